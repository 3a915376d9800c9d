"""LAN discovery (settings/discovery.py) against responders on the loopback range (127.0.0.x): the
probes go only to the address PLAYBACK_SYNC_DISCOVERY_ADDRESS names, never to a broadcast address.

The responders answer as the servers do:
- Jellyfin: Emby.Server.Implementations/Udp/UdpServer.cs at v10.8.13, line 102 (the datagram must
  contain "who is JellyfinServer?", case-insensitive), lines 71-75 (the answer: ServerDiscoveryInfo
  as JSON, MediaBrowser.Model/ApiClient/ServerDiscoveryInfo.cs: Address, Id, Name, EndpointAddress),
  sent back to the sender's endpoint.
- Emby: the same exchange with "who is EmbyServer?".
- Plex GDM: "M-SEARCH * HTTP/1.1" answered by "HTTP/1.0 200 OK" and header lines (Content-Type:
  plex/media-server, Name, Port, Resource-Identifier), as python-plexapi's gdm.py parses them.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from playbacksync.settings import discovery
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.jellyfin import JellyfinFake

ROOT = Path(__file__).resolve().parent.parent / "plugin"


class Responder:
    """A UDP server on 127.0.0.x answering discovery probes like a Jellyfin, Emby or Plex server."""

    def __init__(self, host="127.0.0.7", jellyfin=None, emby=None, plex=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.address = self.sock.getsockname()
        self.jellyfin, self.emby, self.plex = jellyfin, emby, plex
        self.probes = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, sender = self.sock.recvfrom(2048)
            except OSError:
                continue
            self.probes.append(data)
            text = data.decode("utf-8", "replace").lower()
            if "who is jellyfinserver?" in text and self.jellyfin:
                self.sock.sendto(json.dumps({"Address": self.jellyfin[1], "Id": "jf-id", "Name": self.jellyfin[0],
                                             "EndpointAddress": None}).encode(), sender)
            elif "who is embyserver?" in text and self.emby:
                self.sock.sendto(json.dumps({"Address": self.emby[1], "Id": "emby-id", "Name": self.emby[0]}).encode(),
                                 sender)
            elif text.startswith("m-search * http/1.1") and self.plex:
                self.sock.sendto(("HTTP/1.0 200 OK\r\nContent-Type: plex/media-server\r\n"
                                  f"Name: {self.plex[0]}\r\nPort: {self.plex[1]}\r\n"
                                  "Resource-Identifier: abc123\r\nVersion: 1.40.0\r\n\r\n").encode(), sender)

    @property
    def target(self):
        return f"{self.address[0]}:{self.address[1]}"

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def responder():
    r = Responder(jellyfin=("Living Room", "http://127.0.0.7:8096"), emby=("Attic", "http://127.0.0.7:8920"),
                  plex=("Basement", 32400))
    yield r
    r.close()


def test_finds_each_kind_from_the_configured_address(responder, monkeypatch):
    monkeypatch.setenv(discovery.ADDRESS_ENV, responder.target)
    found = discovery.discover(timeout=1.0)
    assert sorted(found, key=lambda f: f.type) == [
        discovery.Found("emby", "Attic", "http://127.0.0.7:8920", "emby-id"),
        discovery.Found("jellyfin", "Living Room", "http://127.0.0.7:8096", "jf-id"),
        discovery.Found("plex", "Basement", "http://127.0.0.7:32400", "abc123")]
    assert set(responder.probes) == {b"who is JellyfinServer?", b"who is EmbyServer?", b"M-SEARCH * HTTP/1.1\r\n\r\n"}


def test_a_server_of_another_kind_or_junk_is_not_offered(monkeypatch):
    r = Responder(jellyfin=None, emby=("Attic", "not a url"))
    try:
        monkeypatch.setenv(discovery.ADDRESS_ENV, r.target)
        assert discovery.discover(("jellyfin", "emby"), timeout=0.5) == []
    finally:
        r.close()


def test_login_without_url_offers_the_server_found_and_signs_in(tmp_path):
    with JellyfinFake(version="10.10.7") as fake:
        fake.add_user("alice", "pass")
        r = Responder(jellyfin=("Living Room", fake.url))
        try:
            cfg = tmp_path / "c.toml"
            env = dict(os.environ, PYTHONPATH=str(ROOT), PLAYBACK_SYNC_DISCOVERY_ADDRESS=r.target,
                       XDG_STATE_HOME=str(tmp_path / "state"), PLAYBACK_SYNC_DATA_DIR=str(tmp_path / "data"))
            done = subprocess.run([sys.executable, "-m", "playbacksync.cli", "--config", str(cfg), "login",
                                   "jellyfin"], input="1\nalice\npass\n", capture_output=True, text=True, timeout=60,
                                  env=env)
        finally:
            r.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"1) Living Room  {fake.url}" in done.stdout
    assert f'url = "{fake.url}"' in cfg.read_text()
