"""The preview's HTTP server (standard library, a thread per connection, HTTP/1.0: one request each).

Read-only, five endpoints and nothing else; no path from a URL ever reaches the file system (the page is
package data, read once at start):

    /              the page (edgenet/sinks/preview.html): the live view and the latest record
    /stream.mjpg   annotated frames as multipart JPEG, at most --serve-fps, at most 640 px wide
    /latest.json   the latest record
    /healthz       200 while frames flow; 503 and the reason otherwise (edgenet.sinks.preview.health)
    /metrics       Prometheus text, the names of the textfile (edgenet.metrics)

With a token, every endpoint wants it, as `Authorization: Bearer TOKEN` or `?token=TOKEN`.
"""

from __future__ import annotations

import contextlib
import hmac
import select
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from edgenet.errors import UsageError

BOUNDARY = "edgenet-frame"
CLIENT_TIMEOUT_S = 15.0  # a client that neither sends its request nor reads for this long is dropped
KEEPALIVE_S = 1.0  # the stream repeats its last frame this often when no new one comes
MAX_CONNECTIONS = 64  # more at once are closed straight away
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a ?token= in the address stays on this page
}
PAGE_POLICY = (
    "default-src 'none'; img-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def load_page() -> bytes:
    from importlib.resources import files

    return files("edgenet.sinks").joinpath("preview.html").read_bytes()


def peer_closed(connection: socket.socket) -> bool:
    """The client hung up (its end is readable and gives no bytes)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # the run never waits for a client

    def __init__(self, address, state, *, token: str | None, metrics):
        host, port = address
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.state = state
        self.token = token.encode() if token else None
        self.metrics = metrics
        self.page = load_page()
        self.connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        try:
            super().__init__((host, port), PreviewHandler)
        except OSError as exc:
            raise UsageError(
                f"--serve {host}:{port}: cannot listen there ({exc.strerror or exc}); choose another port "
                "(or 0 for any free one)"
            ) from None
        self.port = self.server_address[1]

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS look-up of the host (seconds on a board with no DNS)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="edgenet-preview", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, then hang up on every client (a stalled one included: its thread ends)."""
        self.state.stop()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()
        with self._lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def process_request(self, request, client_address) -> None:
        with self._lock:
            crowded = len(self.connections) >= MAX_CONNECTIONS
            if not crowded:
                self.connections.add(request)
        if crowded:
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away mid-answer is no news; nothing goes to stderr

    def allowed(self, headers, query: dict) -> bool:
        if self.token is None:
            return True
        given = headers.get("Authorization", "")
        offered = given[7:].strip() if given[:7].lower() == "bearer " else ""
        offered = offered or (query.get("token") or [""])[0]
        return hmac.compare_digest(offered.encode(), self.token)


class PreviewHandler(BaseHTTPRequestHandler):
    server_version = "edgenet"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version  # no Python version on the wire

    timeout = CLIENT_TIMEOUT_S

    def log_message(self, format, *args) -> None:  # noqa: A002 - the standard library's name
        pass  # no access log on stderr: the run's own lines stay readable

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        parts = urlsplit(self.path)
        routes = {
            "/": self.page,
            "/stream.mjpg": self.stream,
            "/latest.json": self.latest,
            "/healthz": self.healthz,
            "/metrics": self.metrics,
        }
        route = routes.get(parts.path)
        if route is None:
            self.answer(404, b"not found: / /stream.mjpg /latest.json /healthz /metrics\n")
        elif not self.server.allowed(self.headers, parse_qs(parts.query)):
            self.answer(
                401,
                b"a token is needed: ?token=... or Authorization: Bearer ...\n",
                extra={"WWW-Authenticate": 'Bearer realm="edgenet"'},
            )
        else:
            route()

    def answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def page(self) -> None:
        self.answer(
            200, self.server.page, "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_POLICY}
        )

    def latest(self) -> None:
        body = self.server.state.latest_json()
        if body is None:
            self.answer(503, b'{"waiting": "no record yet"}', "application/json")
        else:
            self.answer(200, body, "application/json; charset=utf-8")

    def healthz(self) -> None:
        status, line = self.server.state.health()
        self.answer(status, (line + "\n").encode())

    def metrics(self) -> None:
        if self.server.metrics is None:
            self.answer(503, b"no metrics\n")
            return
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.answer(200, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)

    def stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError, ValueError), self.server.state.watching():
            self._frames()

    def _frames(self) -> None:
        """Each new JPEG of the encoder (edgenet.sinks.preview.PreviewState), and the last one again every
        KEEPALIVE_S when no new one comes (which also finds out that a client left); until the client or the
        server goes. A client that reads slowly gets the newest JPEG when it is ready for one: the others
        are never queued for it."""
        state = self.server.state
        sent, sent_at = 0, 0.0
        while not state.stopping.is_set():
            newest = state.wait_jpeg(sent, KEEPALIVE_S)
            if state.stopping.is_set():
                return
            if newest is None:  # nothing to show yet
                if peer_closed(self.connection):
                    return
                continue
            if newest[0] == sent and time.monotonic() - sent_at < KEEPALIVE_S:
                continue
            sent, jpeg = newest
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            self.wfile.write(head.encode())  # three writes: no copy of the JPEG in this thread
            self.wfile.write(jpeg)
            self.wfile.write(b"\r\n")
            self.wfile.flush()
            sent_at = time.monotonic()
