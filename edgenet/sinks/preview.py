"""The live preview (`--serve [HOST:]PORT`): a small read-only HTTP server (the standard library's threaded
server, edgenet.sinks.preview_http) showing the run as it goes.

The sink's `write` only keeps a reference to the newest frame and record and counts the metrics (a few
microseconds in the writer thread, whoever is watching). One encoder thread, only while a client watches the
stream, draws the newest frame on a copy scaled to 640 px at most and encodes it, at most `--serve-fps` times
a second, once for all clients. No client, no encoding; a client that stops reading blocks only its own
thread, and the frames it misses are dropped, never queued. The server stops with the run (or
`--serve-linger` seconds later, showing the last frame and record).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time

from edgenet.errors import UsageError
from edgenet.sinks import Sink

PREVIEW_WIDTH = 640  # the widest frame the stream sends
PREVIEW_QUALITY = 80
STALE_S = 10.0  # /healthz: no record for this long is a stalled run
LOOPBACK = ("127.", "::1", "localhost")


def parse_address(text: str) -> tuple[str, int]:
    """`--serve [HOST:]PORT` (HOST defaults to 127.0.0.1; `[::1]:8080` for IPv6; port 0: any free one)."""
    host, sep, port = str(text).strip().rpartition(":")
    if not sep:
        host, port = "", text.strip()
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {text}: give [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host.startswith(LOOPBACK)


def stale_after(*, watch: bool = False, interval: float | None = None) -> float | None:
    """How long /healthz waits for a record before it calls the run stalled: never for --watch (an empty
    inbox is normal), three snapshot intervals for --interval, STALE_S otherwise."""
    if watch:
        return None
    return max(STALE_S, 3 * interval) if interval else STALE_S


def health(
    *,
    count: int,
    last: float | None,
    error: str | None,
    ended: bool,
    streaming: bool,
    now: float,
    stale: float | None = STALE_S,
):
    """(status, one line) for /healthz: 200 while frames flow; 503 and why otherwise. `last`: when the last
    record came (time.time()), `error`: the last record's error, if it was one; `stale`: see stale_after()."""
    if ended:
        return 503, "run ended" + (f"; last error: {error}" if error else "")
    if not count:
        return (200, "watching: no new image yet") if stale is None else (503, "waiting for the first frame")
    if streaming and error:
        return 503, error  # a lost camera, until a frame comes again
    if stale is not None and now - last > stale:
        return 503, f"no frame for {now - last:.0f} s"
    return 200, f"ok: {count} frames, the last {now - last:.1f} s ago"


class PreviewState:
    """What the server shows, shared between the writer thread (`update`), the encoder thread and the
    clients' threads. One encoder thread, started by the stream's first client, encodes while a client
    watches: it takes the newest frame at most `fps` times a second, draws on a copy scaled to 640 px at
    most and encodes it once for every client; with no client it waits and nothing is encoded. It lives
    until the server stops: frame-sized buffers allocated by a thread per client, or by a new encoder
    thread each time, would spread over glibc's per-thread malloc arenas, each keeping its high-water
    mark: resident memory grew with every round of clients that way (docs/keeping.md, scripts/serve_cost.py);
    with one thread it is flat."""

    def __init__(self, streaming: bool, fps: float = 5.0, stale: float | None = STALE_S):
        self.streaming = streaming
        self.stale = stale  # /healthz: see stale_after()
        self.interval = 1.0 / max(0.1, fps)
        self.changed = threading.Condition()  # a new record (the encoder waits on it)
        self.encoded_cond = threading.Condition()  # a new JPEG (the stream's clients wait on it)
        self.stopping = threading.Event()
        self.sequence = 0  # frames with pixels so far
        self.count = 0  # records so far
        self.record: dict | None = None
        self.image = None
        self.image_record: dict | None = None  # the record of `image` (the last record may be an error)
        self.last: float | None = None
        self.ended = False
        self.watchers = 0
        self.encoded = 0  # JPEGs encoded (only ever while a client watches)
        self.jpeg: tuple[int, bytes] | None = None  # (sequence, JPEG) of the newest frame encoded
        self._encoder: threading.Thread | None = None

    def update(self, result) -> None:
        with self.changed:
            self.count += 1
            self.record = result.record
            self.last = time.time()
            if result.image is not None and "error" not in result.record:
                self.sequence += 1
                self.image, self.image_record = result.image, result.record
            self.changed.notify()

    def end(self) -> None:
        with self.changed:
            self.ended = True

    def stop(self) -> None:
        self.stopping.set()
        for condition in (self.changed, self.encoded_cond):
            with condition:
                condition.notify_all()
        encoder = self._encoder
        if encoder is not None:
            encoder.join()

    @contextlib.contextmanager
    def watching(self):
        """A client of the stream, while it is connected: the encoder runs."""
        with self.changed:
            self.watchers += 1
            if self._encoder is None:
                self._encoder = threading.Thread(
                    target=self._encode_loop, name="edgenet-preview-jpeg", daemon=True
                )
                self._encoder.start()
            self.changed.notify()
        try:
            yield
        finally:
            with self.changed:
                self.watchers -= 1

    def wait_jpeg(self, sent: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest JPEG once it is newer than `sent` (or after `timeout` s: the same one again)."""
        with self.encoded_cond:
            if (self.jpeg is None or self.jpeg[0] <= sent) and not self.stopping.is_set():
                self.encoded_cond.wait(timeout)
            return self.jpeg

    def _next_frame(self, done: int):
        """Encoder thread: the newest frame once there is one newer than `done` and a client watches; None
        when the server stops."""
        with self.changed:
            while not self.stopping.is_set():
                if self.watchers and self.sequence > done:
                    return self.sequence, self.image, self.image_record
                self.changed.wait(1.0)
            return None

    def _encode_loop(self) -> None:
        done = self.jpeg[0] if self.jpeg else 0
        while True:
            frame = self._next_frame(done)
            if frame is None:
                return
            done, image, record = frame
            jpeg = preview_jpeg(image, record)
            with self.encoded_cond:
                self.jpeg = (done, jpeg)
                self.encoded += 1
                self.encoded_cond.notify_all()
            if self.stopping.wait(self.interval):  # at most --serve-fps
                return

    def health(self) -> tuple[int, str]:
        record = self.record or {}
        return health(
            count=self.count,
            last=self.last,
            error=record.get("error"),
            ended=self.ended,
            streaming=self.streaming,
            now=time.time(),
            stale=self.stale,
        )

    def latest_json(self) -> bytes | None:
        record = self.record
        if record is None:
            return None
        from edgenet.sinks.records import safe_text

        return safe_text(json.dumps(record, ensure_ascii=False)).encode()


def preview_jpeg(image, record: dict) -> bytes:
    """The frame annotated on a copy at most PREVIEW_WIDTH wide, as JPEG."""
    import cv2

    from edgenet.sinks.annotate import draw, encode_jpeg

    scale = min(1.0, PREVIEW_WIDTH / image.shape[1])
    if scale < 1.0:
        size = (PREVIEW_WIDTH, max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return encode_jpeg(draw(image, record, scale), PREVIEW_QUALITY)


class PreviewSink(Sink):
    """The preview server as a run's sink: binds at construction (a busy port is a usage error before any
    frame), serves from then on, stops at `close` (after `linger` seconds, unless the run was stopped)."""

    wants_pixels = True

    def __init__(
        self,
        address: str,
        *,
        fps: float = 5.0,
        token: str | None = None,
        streaming: bool = True,
        info=None,
        linger: float = 0.0,
        stop=None,
        quiet: bool = False,
        stale: float | None = STALE_S,
    ):
        from edgenet.console import say, warn
        from edgenet.sinks.preview_http import PreviewServer

        host, port = parse_address(address)
        self.state = PreviewState(streaming, fps, stale)
        self.metrics = _metrics(info)
        self.server = PreviewServer((host, port), self.state, token=token, metrics=self.metrics)
        self.linger = linger
        self.stop = stop
        self.quiet = quiet
        self.url = self.server.url
        if not is_loopback(host):
            warn(
                f"--serve {host}:{self.server.port}: the preview is reachable from other machines"
                + ("; every request needs --serve-token" if token else "; anyone who can reach it sees it")
            )
        say(f"preview: {self.url}" + (" (with ?token=... or Authorization: Bearer)" if token else ""))
        self.server.start()

    def write(self, result) -> None:
        self.state.update(result)
        if self.metrics is not None:
            self.metrics.observe(result.record)

    def close(self) -> None:
        self.state.end()
        try:
            self._linger()
        finally:
            self.server.stop()

    def _linger(self) -> None:
        if not self.linger or self.stop is None or self.stop:
            return
        from edgenet.console import say

        forever = self.linger == float("inf")
        if not self.quiet:
            say(
                f"run ended; the preview {self.url} shows its last frame "
                + ("until Ctrl-C" if forever else f"for {self.linger:g} s more (Ctrl-C ends it)")
            )
        deadline = time.monotonic() + self.linger
        while not self.stop and time.monotonic() < deadline:
            time.sleep(0.1)


def _metrics(info):
    """The Prometheus metrics of edgenet.metrics, kept in memory for /metrics (never written to a file)."""
    if info is None:
        return None
    from edgenet.metrics import PromTextfile

    return PromTextfile("", model=info.name, delegate=info.delegate, every_s=0.0)
