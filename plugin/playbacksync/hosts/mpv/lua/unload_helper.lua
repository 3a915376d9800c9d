-- Playback Sync helper: loaded by `playback-sync play` (hosts/mpv/embedded.py) and part of the installed
-- script (hosts/mpv/install.py), for the agent.
-- python-mpv has no hook API and time-pos is already gone at end-file, so this
-- reports the exact position of an entry just before mpv unloads it.
-- Nothing runs per frame.
mp.add_hook("on_unload", 50, function()
    local index = mp.get_property_number("playlist-playing-pos")
    local id = index and index >= 0 and mp.get_property_number("playlist/" .. index .. "/id")
    local pos = mp.get_property_number("time-pos")
    -- After `stop` the playlist is already empty: no id, the host takes the entry it is playing.
    mp.commandv("script-message", "playback-sync-unload", id and tostring(id) or "",
                pos and string.format("%.3f", pos) or "")
end)
