"""`install mpv` / `uninstall mpv` as a state machine over a real folder tree.

Actions: install into one of two mpv config folders (existing or not), uninstall, the user adding
files of their own (in the scripts folder or beside it), the user editing or deleting the installed
script. Invariants after every step:
- install is idempotent: a second install of the same script changes no byte and no mtime;
- each installed script holds exactly what install writes, and `installed()` lists those and no other;
- uninstall removes exactly what install added: every file and folder of the user's stays, and
  after it the tree is the user's tree (plus a script the user edited, which is left and named).
"""
import os
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from playbacksync.hosts.mpv import install as inst

COMMAND = ["/usr/bin/python3", "-m", "playbacksync.cli"]


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


class InstallMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self._env = {k: os.environ.get(k) for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "HOME", "MPV_HOME")}
        os.environ.update(XDG_STATE_HOME=str(self.root / "state"), XDG_CONFIG_HOME=str(self.root / "cfg"),
                          HOME=str(self.root / "home"))
        os.environ.pop("MPV_HOME", None)
        self.tree = self.root / "tree"
        self.tree.mkdir()
        (self.tree / "existing-mpv").mkdir()  # a user's mpv folder that is already there
        self.folders = [self.tree / "existing-mpv", self.tree / "new" / "mpv"]
        self.text = inst.script_text(COMMAND)
        self.initial_dirs = set(_tree(self.tree))  # the user's folders before anything ran
        self.user_files = {}  # the user's own files (relative path -> bytes)
        self.scripts = set()  # installed scripts (as install left them)
        self.edited = set()  # installed scripts the user changed since

    def teardown(self):
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._tmp.cleanup()

    @rule(which=st.integers(0, 1))
    def install(self, which):
        folder = self.folders[which]
        lines, ok = inst.install(str(folder), COMMAND)
        assert ok, lines
        script = folder / "scripts" / inst.SCRIPT_NAME
        if str(script) in self.edited:
            self.edited.discard(str(script))  # install puts its own back over a changed one of its own
        self.scripts.add(str(script))
        before = _tree(self.tree)
        stamp = script.stat().st_mtime_ns
        lines, ok = inst.install(str(folder), COMMAND)
        assert ok and any("already installed" in line for line in lines)
        assert _tree(self.tree) == before and script.stat().st_mtime_ns == stamp

    @rule()
    def uninstall(self):
        inst.uninstall()
        expected = dict(self.user_files)
        for script in self.edited:  # changed since install: left in place
            expected[str(Path(script).relative_to(self.tree))] = Path(script).read_bytes()
        actual = _tree(self.tree)
        assert {k: v for k, v in actual.items() if v is not None} == expected
        for rel, content in actual.items():  # a folder that is left is the user's, or holds something
            if content is None:
                assert rel in self.initial_dirs or any(k.startswith(rel + "/") for k in actual), rel
        assert self.initial_dirs <= set(actual)
        self.scripts = set(self.edited)  # still in place, still listed (as changed) until removed

    @rule(which=st.integers(0, 1), inside=st.booleans(), name=st.sampled_from(["mine.lua", "notes.txt"]))
    def user_adds_a_file(self, which, inside, name):
        folder = self.folders[which] / "scripts" if inside else self.folders[which]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"user's {name}\n")
        self.user_files[str((folder / name).relative_to(self.tree))] = (folder / name).read_bytes()

    @precondition(lambda self: self.scripts - self.edited)
    @rule(data=st.data())
    def user_edits_the_script(self, data):
        script = data.draw(st.sampled_from(sorted(self.scripts - self.edited)))
        Path(script).write_text(Path(script).read_text() + "-- my change\n")
        self.edited.add(script)

    @precondition(lambda self: self.scripts - self.edited)
    @rule(data=st.data())
    def user_deletes_the_script(self, data):
        script = data.draw(st.sampled_from(sorted(self.scripts - self.edited)))
        Path(script).unlink()
        self.scripts.discard(script)

    @invariant()
    def installed_scripts_are_exactly_ours(self):
        listed = dict(inst.installed())
        assert set(listed) == self.scripts
        for s in self.scripts - self.edited:
            assert Path(s).read_text() == self.text and listed[s]
        for s in self.edited:
            assert listed[s] is None  # `status`: changed since install


InstallMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=12, deadline=None)
test_install_uninstall_state_machine = InstallMachine.TestCase
