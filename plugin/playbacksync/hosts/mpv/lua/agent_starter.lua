-- Makes sure a Playback Sync agent serves this mpv; the agent (`playback-sync attach`) does all
-- the syncing. Nothing runs per frame: this acts on the first frame of a file and on three keys.
-- COMMAND, VERSION and KEYS are set above by `playback-sync install mpv`.
local utils = require "mp.utils"

local state = {agent = "none", timer = nil, armed = false, keys = false}

local function osd(text)  -- on screen, and in mpv's terminal and log
    mp.osd_message("Playback Sync: " .. text, 6)
    mp.msg.warn(text)
end

local function embedded()  -- `playback-sync play`: its own host serves this mpv
    return mp.get_opt("playback_sync-host") == "embedded"
end

local function windows()
    return package.config:sub(1, 1) == "\\"
end

-- The socket the agent uses: this mpv's own if one is set (by the user, SMPlayer, Syncplay: never
-- replaced), else a private one for this process.
local function socket_path()
    local current = mp.get_property("input-ipc-server", "")
    if current ~= "" then
        return mp.command_native({"expand-path", current}), false
    end
    local pid = mp.get_property("pid", "0")
    if windows() then
        return "\\\\.\\pipe\\playback-sync-mpv-" .. pid, true
    end
    local dir = os.getenv("XDG_RUNTIME_DIR")  -- user-only by definition (0700)
    if not dir or dir == "" or not utils.file_info(dir) then
        math.randomseed(os.time() + tonumber(pid))
        dir = (os.getenv("TMPDIR") or "/tmp") .. "/playback-sync-" .. pid .. "-" .. math.random(1, 1000000000)
        local made = mp.command_native({name = "subprocess", args = {"mkdir", "-m", "700", dir},
                                        playback_only = false, capture_stdout = true, capture_stderr = true})
        if not made or made.status ~= 0 then
            return nil, false
        end
    end
    return dir .. "/playback-sync-mpv-" .. pid .. ".sock", true
end

local function start_agent()
    if COMMAND[1]:sub(1, 1) == "/" and not utils.file_info(COMMAND[1]) then
        osd("not syncing: " .. COMMAND[1] .. " is gone (run `playback-sync install mpv` again)")
        return
    end
    local path, owned = socket_path()
    if not path then
        osd("not syncing: could not make a private socket for the sync agent")
        return
    end
    if owned then
        mp.set_property("input-ipc-server", path)
    end
    local args = {}
    for _, part in ipairs(COMMAND) do args[#args + 1] = part end
    for _, part in ipairs({"attach", "--ipc", path, "--mpv-pid", mp.get_property("pid", "0")}) do
        args[#args + 1] = part
    end
    if owned then args[#args + 1] = "--owned" end
    state.agent = "starting"
    mp.command_native_async({name = "subprocess", args = args, detach = true, playback_only = false},
        function(ok, result, err)
            if not ok or (result and result.error_string and result.error_string ~= "") then
                state.agent = "none"
                osd("not syncing: could not start playback-sync (" .. tostring(err or result.error_string) .. ")")
            end
        end)
    state.timer = mp.add_timeout(30, function()
        if state.agent == "starting" then
            state.agent = "none"
            osd("not syncing: the sync agent did not start (see playback-sync's log)")
        end
    end)
end

local function check_agent()  -- an agent that was killed is started again at the next file
    state.agent = "checking"
    mp.commandv("script-message", "playback-sync-ping")
    state.timer = mp.add_timeout(3, function()
        if state.agent == "checking" then start_agent() end
    end)
end

local function on_first_frame()
    mp.unregister_event(on_first_frame)
    state.armed = false
    if state.agent == "none" then
        start_agent()
    elseif state.agent == "ready" then
        check_agent()
    end
end

local function bind_keys()
    state.keys = true
    for _, action in ipairs({"mark-watched", "mark-unwatched", "settings"}) do
        mp.add_key_binding(KEYS[action], action, function()
            if state.agent ~= "ready" then
                osd("the sync agent is not running: nothing was sent")
                return
            end
            mp.commandv("script-message", "playback-sync", action)
        end)
    end
end

mp.register_script_message("playback-sync-agent", function(what)
    if what == "ready" or what == "failed" then  -- failed: the agent said why on screen itself
        state.agent = what == "ready" and "ready" or "none"
        if state.timer then state.timer:kill(); state.timer = nil end
    end
end)

mp.register_event("file-loaded", function()
    if embedded() then return end
    if not state.keys then bind_keys() end
    if not state.armed then
        state.armed = true
        mp.register_event("playback-restart", on_first_frame)
    end
end)
