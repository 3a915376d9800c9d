"""Settings dialog actions: RunScript(service.playbacksync,ACTION[,SERVER_TYPE])."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from playbacksync.hosts.kodi.actions import run_action  # noqa: E402

run_action(sys.argv)
