"""Kodi service entry point: the bundled libraries live in resources/lib."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from playbacksync.hosts.kodi.service import run_service  # noqa: E402

run_service()
