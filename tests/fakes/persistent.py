"""An HTTP/1.1 server for the fakes that keeps connections open, as the real servers do.

Werkzeug's development server answers every request with "Connection: close"
(it reads whatever follows a response to discard it, so it cannot keep a
connection). Jellyfin and Emby (Kestrel / .NET) and Plex keep HTTP/1.1
connections open and send each answer at once (Kestrel sets TCP_NODELAY), so a
client that keeps its connections pays the TCP set-up once, not per request.
``FakeServer(keep_alive=True)`` serves the same fake over this server instead;
the connection costs then match a real server's, which is what bench W2's
"one round trip per change" floor assumes. Requests and answers are the same
bytes, routed and validated by the same fake.

A connection is closed after an answer without a Content-Length (the
``delay(body=True)`` stream), after a request that asked for it, and by
``drop_all()`` (``go_down``/``stop``). No TLS on this server.
"""
from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer


class TrackedSockets:
    """A socketserver mixin: the open connections, so they can be cut (``drop_all``)
    or reset (SO_LINGER 0, for ``reset_next``)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.reset_sockets = set()
        self.open_sockets = set()
        self.sockets_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
            reset = request in self.reset_sockets
            self.reset_sockets.discard(request)
        if reset:  # SO_LINGER 0 is set: close() sends RST, not FIN
            request.close()
        else:
            super().shutdown_request(request)

    def drop_all(self):
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Answer(ServerHandler):
    """One answer, in HTTP/1.1; notes whether its length was told (else the connection ends)."""

    http_version = "1.1"
    sized = False

    def send_preamble(self):
        self.sized = "Content-Length" in self.headers
        super().send_preamble()


class _PersistentHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        """Answer requests on this connection until the client or an answer ends it."""
        self.close_connection = True
        try:
            self._answer_one()
            while not self.close_connection:
                self._answer_one()
        except OSError:  # the client went away, or drop_all cut the connection
            self.close_connection = True

    def _answer_one(self):
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or len(self.raw_requestline) > 65536:
            self.close_connection = True
            return
        if not self.parse_request():  # it answered the error itself
            self.close_connection = True
            return
        environ = self.get_environ()
        environ["werkzeug.socket"] = self.connection  # the fake's reset_next uses it
        environ["REMOTE_PORT"] = str(self.client_address[1])
        answer = _Answer(self.rfile, self.wfile, self.get_stderr(), environ, multithread=True)
        answer.request_handler = self
        answer.run(self.server.get_app())
        if not answer.sized:
            self.close_connection = True

    def log_message(self, format, *args):  # keep test output clean
        pass


class PersistentWSGIServer(TrackedSockets, ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, port: int, app):
        super().__init__((host, port), _PersistentHandler)
        self.set_app(app)
