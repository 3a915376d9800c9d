# Playback Sync. `make run` and `make test` are the two commands the README gives.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?= status

# What the plugin needs at run time, and what the tests need on top (real libmpv,
# generated clips, real Kodi under Xvfb with a PulseAudio null sink, Tk on Xvfb).
RUN_APT := libmpv2
TEST_APT := $(RUN_APT) mpv ffmpeg xvfb xauth x11-apps imagemagick xdotool pulseaudio libgl1-mesa-dri kodi

.PHONY: install test-deps apt test run bench soak kodi-zip kodi-repo kodi-settings clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(MAKE) --no-print-directory apt PKGS="$(RUN_APT) $$($(PYTHON) -c 'import ensurepip' 2>/dev/null || echo python3-venv) $$($(PYTHON) -c 'import tkinter' 2>/dev/null || echo python3-tk)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

test-deps: install .venv-kodichecker/.installed
	@$(MAKE) --no-print-directory apt PKGS="$(TEST_APT)"

# kodi-addon-checker in a venv of its own: its pins clash with ours.
.venv-kodichecker/.installed: constraints-kodichecker.txt
	$(PYTHON) -m venv .venv-kodichecker
	.venv-kodichecker/bin/pip install -q -c constraints-kodichecker.txt kodi-addon-checker
	touch $@

# Installs missing Debian packages when run as root; otherwise says exactly what to install.
apt:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done | xargs); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "Missing Debian packages: $$missing"; echo "Install them with: sudo apt-get install $$missing"; exit 1; \
	fi

# pytest exits 5 when it collects nothing; that is reported, not a crash.
test: test-deps
	@$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 0; fi; exit $$rc

run: install
	$(VENV)/bin/playback-sync $(ARGS)

bench: test-deps
	$(PY) bench/run_all.py

# The Kodi add-on, installable with Kodi's "Install from zip file".
kodi-zip: install
	$(PY) -m playbacksync.kodi_zip

# A static Kodi repository in dist/kodi-repo, to be served at REPO_URL (a build setting:
# `make kodi-repo REPO_URL=https://example.org/kodi`). Users install its repository.playbacksync zip once.
REPO_URL ?= http://127.0.0.1:8000
kodi-repo: install
	$(PY) -m playbacksync.kodi_repo --url "$(REPO_URL)" --out dist/kodi-repo

# Regenerates resources/settings.xml and strings.po from the settings schema.
kodi-settings: install
	$(PY) -m playbacksync.settings.kodi_settings .

# 200 crash trials: real players killed with SIGKILL at random moments, then drained.
soak: test-deps
	$(PY) bench/soak.py --trials 200 --jobs 4

clean:
	rm -rf $(VENV) .venv-kodichecker dist build .pytest_cache .hypothesis
