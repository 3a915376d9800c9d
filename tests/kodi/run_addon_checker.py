"""Run kodi-addon-checker offline: ``python run_addon_checker.py --branch nexus DIR``.

Run with the checker's own interpreter (it lives in a separate venv). The
checker first downloads the official repository index for every branch and
hangs without a network; here that index is replaced by an empty one, so it
cannot tell whether dependencies exist in the official repository.
"""
import sys

from kodi_addon_checker.addons import Repository as _repository


def _offline_init(self, version, path):
    self.version, self.path, self.addons = version, path, []


_repository.Repository.__init__ = _offline_init

from kodi_addon_checker.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["kodi-addon-checker", *sys.argv[1:]]
    sys.exit(main())
