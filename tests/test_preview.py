"""The live preview (--serve): the real server, a real HTTP client, real frames and records from the real
model; a real browser (Debian's chromium, headless, through chromium-driver) for the page; the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import run_loop

from edgenet.errors import UsageError
from edgenet.run.loop import Result
from edgenet.sinks import Sink
from edgenet.sinks.preview import STALE_S, PreviewSink, health, parse_address, stale_after

PHOTOS = ("owl.jpg", "hot_dog.jpg", "parrot.jpg", "cat_1080p.jpg")


@pytest.fixture(scope="module")
def results(images, mirror, session_home):
    """Real results (record + original pixels) of the real model on real photos, through the one loop."""
    from edgenet import sources, zoo
    from edgenet.model import open_model

    class Keep(Sink):
        wants_pixels = True

        def __init__(self):
            self.results = []

        def write(self, result):
            self.results.append(result)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGENET_MODEL_MIRROR", str(mirror))
        patch.setenv("EDGENET_HOME", str(session_home))
        zoo._mirror_index.cache_clear()
        model = open_model("v1-0.25-128", threads=1)
    kept = Keep()
    run_loop(model, sources.image_frames([str(images / name) for name in PHOTOS]), sinks=[kept])
    assert len(kept.results) == len(PHOTOS) and all(r.image is not None for r in kept.results)
    return model, kept.results


@contextlib.contextmanager
def serving(results, **options):
    model, _ = results
    sink = PreviewSink("127.0.0.1:0", info=model.info, quiet=True, **options)
    try:
        yield sink
    finally:
        sink.close()


def get(url: str, headers=None, timeout: float = 10):
    """(status, headers, body) of a GET, error statuses included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as failed:
        return failed.code, failed.headers, failed.read()


def read_parts(url: str, count: int, timeout: float = 20) -> list[bytes]:
    """The first `count` JPEGs of a multipart stream, by their Content-Length."""
    parts = []
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        assert answer.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        while len(parts) < count:
            line = answer.readline()
            assert line, "the stream ended"
            if line.lower().startswith(b"content-length:"):
                answer.readline()  # the blank line after the part's headers
                parts.append(answer.read(int(line.split(b":")[1])))
    return parts


def decode(jpeg: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_address_parsing_and_health_rules():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("http", "host:", "1:99999", "-1"):
        with pytest.raises(UsageError, match="--serve"):
            parse_address(bad)
    now = 1000.0
    ok = {"count": 3, "last": now - 1, "error": None, "ended": False, "streaming": True, "now": now}
    assert health(**ok)[0] == 200
    assert health(**{**ok, "count": 0}) == (503, "waiting for the first frame")
    assert health(**{**ok, "error": "camera lost: camera:0 gave no frame"}) == (
        503,
        "camera lost: camera:0 gave no frame",
    )
    assert health(**{**ok, "error": "cannot decode image", "streaming": False})[0] == 200  # a bad image
    assert health(**{**ok, "last": now - 60})[1] == "no frame for 60 s"
    assert health(**{**ok, "ended": True})[0] == 503
    # --watch: an empty inbox is no stall; --interval 15: a snapshot every 15 s is not a stall either
    watching = {**ok, "streaming": False, "stale": stale_after(watch=True)}
    assert health(**{**watching, "count": 0}) == (200, "watching: no new image yet")
    assert health(**{**watching, "last": now - 3600})[0] == 200
    assert health(**{**watching, "ended": True})[0] == 503
    snapshots = {**ok, "stale": stale_after(interval=15)}
    assert health(**{**snapshots, "last": now - 30})[0] == 200
    assert health(**{**snapshots, "last": now - 60}) == (503, "no frame for 60 s")
    assert stale_after() == stale_after(interval=1) == STALE_S


def test_endpoints_answer_and_nothing_else_is_served(results, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from edgenet.metrics import PromTextfile

    model, frames = results
    with serving(results) as sink:
        url = sink.url
        assert get(url + "healthz")[:1] == (503,) and b"waiting" in get(url + "healthz")[2]
        assert get(url + "latest.json")[0] == 503
        for result in frames:
            sink.write(result)
        status, headers, page = get(url)
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"stream.mjpg" in page
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        status, _, body = get(url + "latest.json")
        assert status == 200 and json.loads(body) == frames[-1].record
        assert get(url + "healthz")[0] == 200
        status, _, text = get(url + "metrics")
        served = {family.name for family in text_string_to_metric_families(text.decode())}
        textfile = PromTextfile(
            str(tmp_path / "edgenet.prom"), model=model.info.name, delegate="x", every_s=0
        )
        textfile.observe(frames[0].record)
        textfile.write()
        written = text_string_to_metric_families((tmp_path / "edgenet.prom").read_text())
        assert served == {family.name for family in written}  # the names of --prom-textfile
        assert f'edgenet_frames_total{{delegate="{model.info.delegate}"'.encode() in text
        for path in (
            "preview.html",
            "../../etc/passwd",
            "%2e%2e/%2e%2e/etc/passwd",
            "sinks/preview.html",
            "x",
        ):
            assert get(url + path)[0] == 404, path
        with socket.create_connection(("127.0.0.1", sink.server.port)) as raw:
            raw.sendall(b"POST /latest.json HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
            assert raw.recv(100).split()[1] == b"501"  # read-only: GET and nothing else
        sink.write(Result({"source": "camera:0", "frame": 9, "error": "camera lost: camera:0"}, time.time()))
        assert get(url + "healthz")[:3:2] == (503, b"camera lost: camera:0\n")
        sink.state.end()
        assert get(url + "healthz")[2].startswith(b"run ended")


def feed_for(sink, frames, seconds: float) -> None:
    """Frames into the sink for `seconds`, about 200 a second (a fast stream)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for result in frames:
            sink.write(result)
            time.sleep(0.005)


def wait_until(test, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while not test():
        assert time.monotonic() < deadline, "waited 30 s in vain"
        time.sleep(0.02)


def test_jpeg_encoded_only_while_a_client_watches_at_most_640_wide(results):
    _, frames = results
    with serving(results, fps=20) as sink:
        feed_for(sink, frames, 1.0)
        assert sink.state.encoded == 0  # nobody watching: frames are kept by reference, never encoded
        feeder = threading.Thread(target=feed_for, args=(sink, frames, 3.0))
        feeder.start()
        try:
            started = time.monotonic()
            parts = read_parts(sink.url + "stream.mjpg", 6)
            elapsed = time.monotonic() - started
        finally:
            feeder.join()
        assert all(decode(part).shape[1] <= 640 for part in parts)
        assert len(parts) <= elapsed * 20 + 1  # never more than --serve-fps (an upper bound only)
        wait_until(lambda: sink.state.watchers == 0)  # the server saw the client leave
        encoded = sink.state.encoded
        assert encoded >= len(parts)
        feed_for(sink, frames, 1.0)
        assert sink.state.encoded <= encoded + 1  # at most the one under way when the client left
        big = frames[PHOTOS.index("cat_1080p.jpg")]
        assert big.image.shape[:2] == (1080, 1920)
        sink.write(big)
        last = decode(read_parts(sink.url + "stream.mjpg", 2)[-1])  # the first may be from before
        assert last.shape[:2] == (360, 640)  # at most 640 wide, the frame's proportions


def test_a_token_guards_every_endpoint(results):
    _, frames = results
    with serving(results, token="s3cret tok") as sink:
        sink.write(frames[0])
        for path in ("", "stream.mjpg", "latest.json", "healthz", "metrics"):
            status, headers, _ = get(sink.url + path)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
            assert get(sink.url + path, {"Authorization": "Bearer wrong"})[0] == 401
            assert get(sink.url + path + "?token=s3cret%20tok2")[0] == 401
        assert get(sink.url + "latest.json", {"Authorization": "Bearer s3cret tok"})[0] == 200
        assert get(sink.url + "latest.json?token=s3cret%20tok")[0] == 200
        assert len(read_parts(sink.url + "stream.mjpg?token=s3cret%20tok", 1)) == 1


def test_binding_beyond_loopback_says_so(results, capsys):
    model, _ = results
    sink = PreviewSink("0.0.0.0:0", info=model.info)
    sink.close()
    said = capsys.readouterr().err
    assert "reachable from other machines" in said and "anyone who can reach it" in said
    with serving(results) as taken, pytest.raises(UsageError, match="cannot listen there"):
        PreviewSink(f"127.0.0.1:{taken.server.port}", info=model.info)


def process_counts() -> dict:
    status = Path("/proc/self/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return {
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_mb": rss_kb / 1024,
    }


def settled(baseline: dict, deadline_s: float = 30) -> dict:
    """The counts once the handler threads of the clients that left have ended (waits, never times)."""
    deadline = time.monotonic() + deadline_s
    counts = process_counts()
    while counts["threads"] > baseline["threads"] and time.monotonic() < deadline:
        time.sleep(0.05)
        counts = process_counts()
    return counts


def clients_round(url: str) -> None:
    """50 clients, one after the other: 40 read a frame of the stream, 10 a record or the health."""
    for client in range(50):
        if client % 5:
            assert len(read_parts(url + "stream.mjpg", 1)) == 1
        else:
            assert get(url + ("latest.json", "healthz")[client % 2])[0] == 200


def test_clients_come_and_go_and_nothing_grows(results):
    """Rounds of 50 clients connecting, reading and leaving while frames keep coming: after the first round
    (which starts the one encoder thread), threads and file descriptors come back to what they were and
    memory stays put."""
    _, frames = results
    with serving(results, fps=30) as sink:
        stop = threading.Event()

        def feed():
            while not stop.is_set():
                for result in frames:
                    sink.write(result)
                time.sleep(0.01)

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            before = process_counts()
            clients_round(sink.url)
            first = settled({"threads": before["threads"] + 1})  # + the encoder
            rounds, seen = [], sink.state.count
            for _round in range(10):
                clients_round(sink.url)
                rounds.append(settled(first))
                assert sink.state.count > seen  # the run goes on while clients come and go
                seen = sink.state.count
        finally:
            stop.set()
            feeder.join()
    print(f"before: {before}; after round 1: {first}; after rounds 2-11: {rounds}")
    assert first["threads"] == before["threads"] + 1
    assert all(counts["threads"] == first["threads"] for counts in rounds)
    assert all(counts["fds"] <= first["fds"] for counts in rounds)  # (fds of earlier tests may close now)
    # 500 more connections and ~400 frames encoded: a frame kept per client or per frame would be 100+ MB
    assert rounds[-1]["rss_mb"] - first["rss_mb"] < 8
