"""Finding servers on the local network, so `login` can offer them instead of asking for a URL.

Jellyfin and Emby answer a UDP datagram "who is JellyfinServer?" / "who is
EmbyServer?" on port 7359 with JSON {"Address", "Id", "Name", ...}. Plex
answers GDM: "M-SEARCH * HTTP/1.1" to port 32414 (multicast group
239.0.0.250, also broadcast), with HTTP-style header lines (Name, Port,
Resource-Identifier, Content-Type: plex/media-server).

Where the probes go is configurable: ``targets``, or the environment variable
PLAYBACK_SYNC_DISCOVERY_ADDRESS=host:port, which sends every probe to that one
address (tests use a responder on 127.0.0.x; nothing is broadcast then).
"""
from __future__ import annotations

import json
import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

ADDRESS_ENV = "PLAYBACK_SYNC_DISCOVERY_ADDRESS"
PROBES = {
    "jellyfin": b"who is JellyfinServer?",
    "emby": b"who is EmbyServer?",
    "plex": b"M-SEARCH * HTTP/1.1\r\n\r\n",
}
DEFAULT_TARGETS: Dict[str, Sequence[Tuple[str, int]]] = {
    "jellyfin": (("255.255.255.255", 7359),),
    "emby": (("255.255.255.255", 7359),),
    "plex": (("239.0.0.250", 32414), ("255.255.255.255", 32414)),
}


@dataclass(frozen=True)
class Found:
    type: str     # jellyfin | emby | plex
    name: str
    url: str
    server_id: str = ""


def targets_from_env() -> Optional[Dict[str, Sequence[Tuple[str, int]]]]:
    value = os.environ.get(ADDRESS_ENV, "").strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{ADDRESS_ENV} must be host:port, not {value!r}")
    return {kind: ((host, int(port)),) for kind in PROBES}


def discover(types: Sequence[str] = ("jellyfin", "emby", "plex"), *, timeout: float = 1.5,
             targets: Optional[Dict[str, Sequence[Tuple[str, int]]]] = None) -> List[Found]:
    """Servers of ``types`` that answered within ``timeout`` seconds, each once, in answer order."""
    targets = targets or targets_from_env() or DEFAULT_TARGETS
    socks = {}
    try:
        for kind in types:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setblocking(False)
            for address in targets.get(kind, ()):
                try:
                    s.sendto(PROBES[kind], address)
                except OSError:
                    pass  # no route for broadcast / multicast here: other probes may still work
            socks[s] = kind
        return _collect(socks, timeout)
    finally:
        for s in socks:
            s.close()


def _collect(socks: Dict[socket.socket, str], timeout: float) -> List[Found]:
    found: List[Found] = []
    seen = set()
    deadline = time.monotonic() + timeout
    while socks:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(list(socks), [], [], left)
        for s in ready:
            try:
                data, sender = s.recvfrom(4096)
            except OSError:
                continue
            entry = _parse(socks[s], data, sender[0])
            if entry is not None and (entry.type, entry.url) not in seen:
                seen.add((entry.type, entry.url))
                found.append(entry)
    return found


def _parse(kind: str, data: bytes, sender: str) -> Optional[Found]:
    text = data.decode("utf-8", "replace")
    if kind in ("jellyfin", "emby"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("Address"), str):
            return None
        url = doc["Address"].rstrip("/")
        if not url.startswith(("http://", "https://")):
            return None
        return Found(kind, str(doc.get("Name") or url), url, str(doc.get("Id") or ""))
    lines = text.splitlines()
    if not lines or "200 OK" not in lines[0]:
        return None
    head = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:]) if k}
    if head.get("content-type", "plex/media-server") != "plex/media-server":
        return None
    port = head.get("port", "32400")
    if not port.isdigit():
        return None
    return Found("plex", head.get("name") or sender, f"http://{sender}:{port}", head.get("resource-identifier", ""))
