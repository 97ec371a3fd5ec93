#!/usr/bin/env python3
"""What `--serve` costs a stream: steady fps of `edgenet classify --video` without it, with it and no client,
and with one client watching /stream.mjpg (at --serve-fps, default 5); then 50 clients connecting and leaving
in a loop against a running stream, with the process's threads, file descriptors and memory after each round.

Per repetition the three variants run back to back, in an order that rotates, on the same MJPG clip made from
the shared photos (1 inference thread, records to a file); steady fps is taken from the records' `time`
(first to last), as in scripts/stream_fps.py. Ratios are per repetition (variant / plain of the same
repetition); medians and spread are printed. Target: no client >= 0.98. The CPU each stream process used
per record (user + system, start-up included) is printed too: on a box shared with other jobs it moves far
less than fps does.

    .venv/bin/python scripts/serve_cost.py [--model v2] [--frames 1200] [--size 640x480] [--repeat 7]
        [--clients 50] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from stream_fps import ROOT, SHARED, make_clip

VARIANTS = ("plain", "serve, no client", "serve, 1 client")


class Stream:
    """`edgenet classify --video CLIP ...` in a subprocess; with --serve, its preview's address."""

    def __init__(self, clip: Path, model: str, serve: bool, out, extra=()):
        command = [sys.executable, "-m", "edgenet", "classify", "--video", str(clip), "--model", model]
        command += ["--threads", "1", "--format", "jsonl", *extra]
        if serve:
            command += ["--serve", "127.0.0.1:0"]
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
        self.url = None
        self.stderr: list[str] = []
        if serve:
            for line in self.process.stderr:
                self.stderr.append(line)
                found = re.match(r"preview: (http://\S+)", line)
                if found:
                    self.url = found.group(1)
                    break
        self._drain = threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True)
        self._drain.start()

    def wait(self) -> None:
        self.process.wait()
        self._drain.join(5)
        if self.process.returncode != 0:
            sys.exit(f"edgenet classify failed ({self.process.returncode}): {''.join(self.stderr)[-500:]}")


def watch(url: str, frames: list[int]) -> None:
    """A client reading the stream until the server hangs up; counts the JPEGs it got."""
    try:
        with urllib.request.urlopen(url + "stream.mjpg", timeout=30) as answer:
            while True:
                line = answer.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    answer.readline()
                    answer.read(int(line.split(b":")[1]))
                    frames[0] += 1
    except OSError:
        return


def steady_fps(records: list[dict]) -> float:
    times = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in records]
    return (len(times) - 1) / (times[-1] - times[0])


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(clip: Path, model: str, variant: str) -> tuple[float, float, int]:
    """Steady fps of one stream, the CPU it used per frame (ms, user + system, start-up included), and how
    many JPEGs its client got (0 without one)."""
    got = [0]
    cpu_before = child_cpu_s()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        stream = Stream(clip, model, serve=variant != "plain", out=out)
        client = None
        if variant == "serve, 1 client":
            client = threading.Thread(target=watch, args=(stream.url, got))
            client.start()
        stream.wait()
        if client is not None:
            client.join(30)
        out.seek(0)
        records = [json.loads(line) for line in out]
    cpu_ms = (child_cpu_s() - cpu_before) * 1000 / len(records)
    return steady_fps(records), cpu_ms, got[0]


def compare(clip: Path, model: str, repeat: int) -> tuple[dict, dict]:
    fps: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for run in range(repeat):
        order = VARIANTS[run % 3 :] + VARIANTS[: run % 3]  # no variant keeps a fixed slot
        line = []
        for variant in order:
            value, cpu_ms, jpegs = one_run(clip, model, variant)
            fps[variant].append(value)
            cpu[variant].append(cpu_ms)
            line.append(
                f"{variant} {value:.1f} fps, {cpu_ms:.2f} ms CPU/frame"
                + (f" ({jpegs} JPEGs to the client)" if jpegs else "")
            )
        print(f"  run {run + 1}: " + "; ".join(line), flush=True)
    return fps, cpu


def proc_counts(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        "threads": int(re.search(r"Threads:\s+(\d+)", status).group(1)),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "rss_mb": round(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024, 1),
    }


def fetch_one(port: int, url: str, client: int) -> None:
    """One client: 4 of 5 read the first JPEG of the stream and hang up; the others read a record or the
    health."""
    if client % 5 == 0:
        urllib.request.urlopen(url + ("latest.json", "healthz")[client % 2], timeout=30).read()
        return
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        received = b""
        while b"\xff\xd9" not in received:  # the end of the first JPEG
            chunk = connection.recv(65536)
            if not chunk:
                return
            received += chunk


def churn(clip: Path, model: str, clients: int, rounds: int) -> None:
    """`clients` clients one after the other, `rounds` times, against a running stream; the process's
    threads, file descriptors and resident memory, and the records written, after each round."""
    with tempfile.NamedTemporaryFile("w+", encoding="utf-8") as out:
        stream = Stream(clip, model, serve=True, out=out, extra=("--serve-fps", "30"))
        pid, url = stream.process.pid, stream.url
        port = int(url.rsplit(":", 1)[1].strip("/"))
        while stream.process.poll() is None:  # until frames flow
            try:
                urllib.request.urlopen(url + "healthz", timeout=30).read()
                break
            except OSError:
                time.sleep(0.1)
        print(f"  before any client: {proc_counts(pid)}")
        for number in range(rounds):
            for client in range(clients):
                fetch_one(port, url, client)
            time.sleep(0.5)  # the handler threads of the clients that left end
            if stream.process.poll() is not None:
                print(f"  the stream ended after {number} rounds: make it longer (--churn-frames)")
                return
            records = Path(out.name).read_bytes().count(b"\n")
            print(f"  after round {number + 1}: {proc_counts(pid)}, {records} records so far", flush=True)
        stream.process.terminate()
        stream.process.wait()


def real_results(model_name: str, size: tuple[int, int]):
    """The model, and real results (record and pixels) of it on the shared photos at `size`, from the one
    loop."""
    import glob

    import cv2

    from edgenet.model import open_model
    from edgenet.run.loop import Loop
    from edgenet.run.stop import StopSignals
    from edgenet.run.summary import RunSummary
    from edgenet.sinks import Sink, Sinks
    from edgenet.sources import Frame

    class Keep(Sink):
        wants_pixels = True

        def __init__(self):
            self.results = []

        def write(self, result):
            self.results.append(result)

    model = open_model(model_name, threads=1)
    photos = sorted(glob.glob(str(SHARED / "images" / "*.jpg")))
    frames = [
        Frame(p, n, cv2.resize(cv2.imread(p), size, interpolation=cv2.INTER_AREA), 0.0)
        for n, p in enumerate(photos)
    ]
    kept, summary = Keep(), RunSummary()
    Loop(model, Sinks([kept, summary]), live=False, stop=StopSignals()).run(frames, summary)
    return model, kept.results


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sink_cost(model_name: str, size: tuple[int, int], calls: int = 20000) -> None:
    """In one process, what the preview adds: its write() per record (the writer thread's work, no client),
    the CPU of an idle server, and the encoder's work per JPEG (what one client costs, times --serve-fps)."""
    from stream_fps import invoke_p50

    from edgenet.sinks.preview import PreviewSink, preview_jpeg

    model, results = real_results(model_name, size)
    tensor, _ = model.task.prepare(results[0].image)
    invoke = invoke_p50(model.engine, tensor)
    sink = PreviewSink("127.0.0.1:0", info=model.info, quiet=True)
    try:
        started = time.perf_counter()
        for number in range(calls):
            sink.write(results[number % len(results)])
        write_us = (time.perf_counter() - started) / calls * 1e6
        cpu_before = self_cpu_s()
        time.sleep(5.0)
        idle_ms_per_s = (self_cpu_s() - cpu_before) * 1000 / 5.0
    finally:
        sink.close()
    cpu_before = self_cpu_s()
    time.sleep(5.0)
    baseline_ms_per_s = (self_cpu_s() - cpu_before) * 1000 / 5.0
    times = []
    for result in results * 10:
        started = time.perf_counter()
        preview_jpeg(result.image, result.record)
        times.append((time.perf_counter() - started) * 1000)
    jpeg_ms = statistics.median(times)
    print(f"in one process, {model_name} invoke p50 {invoke:.2f} ms (1 thread), frames {size[0]}x{size[1]}:")
    print(
        f"  PreviewSink.write per record, no client: {write_us:.1f} us (writer thread), "
        f"{write_us / 1000 / invoke * 100:.2f}% of an invoke"
    )
    print(
        f"  an idle server: {idle_ms_per_s:.2f} ms CPU per second (the process without it: "
        f"{baseline_ms_per_s:.2f})"
    )
    print(
        f"  one client: draw + resize + encode {jpeg_ms:.2f} ms per JPEG (median), at 5 fps "
        f"{jpeg_ms * 5 / 10:.2f}% of one core"
    )


def in_process(model_name: str, clip: Path, repeat: int) -> None:
    """The same clip through the one loop in this process, alternating: plain; with a sink that only keeps
    the pixels (what --serve makes the loop do); with the preview sink and no client. Same engine, no
    start-up in the figures: steady fps and CPU per frame (all threads of this process)."""
    import contextlib
    import io

    from edgenet import sources
    from edgenet.model import open_model
    from edgenet.run.loop import Limits, Loop
    from edgenet.run.stop import StopSignals
    from edgenet.run.summary import RunSummary
    from edgenet.runtime import decode_threads
    from edgenet.sinks import Sink, Sinks
    from edgenet.sinks.preview import PreviewSink

    class Pixels(Sink):
        wants_pixels = True

        def write(self, result):
            pass

    model = open_model(model_name, threads=1)

    def stream(kind: str) -> tuple[float, float]:
        summary = RunSummary()
        extra = []
        if kind == "pixels kept":
            extra = [Pixels()]
        elif kind == "serve, no client":
            extra = [PreviewSink("127.0.0.1:0", info=model.info, quiet=True)]
        frames = sources.file_frames([str(clip)], 1, decode_threads(1), frozenset([str(clip)]))
        cpu_before = self_cpu_s()
        loop = Loop(
            model, Sinks([summary, *extra]), live=False, stop=StopSignals(), limits=Limits(warm_up=True)
        )
        loop.run(frames, summary)
        return summary.steady_fps(), (self_cpu_s() - cpu_before) * 1000 / summary.count

    kinds = ("plain", "pixels kept", "serve, no client")
    found: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    for run in range(repeat):
        for kind in kinds[run % 3 :] + kinds[: run % 3]:
            with contextlib.redirect_stderr(io.StringIO()):  # the preview's address line
                found[kind].append(stream(kind))
    print(f"in one process, {repeat} alternations:")
    for kind in kinds:
        fps, cpu = statistics.median(f for f, _ in found[kind]), statistics.median(c for _, c in found[kind])
        line = f"  {kind}: median {fps:.1f} fps, CPU per frame {cpu:.2f} ms"
        if kind != "plain":
            ratios = [a[0] / b[0] for a, b in zip(found[kind], found["plain"], strict=True)]
            spread = f"min {min(ratios):.3f}, max {max(ratios):.3f}"
            line += f"; / plain median {statistics.median(ratios):.3f} ({spread})"
        print(line, flush=True)


def report(fps: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    for variant in VARIANTS:
        values, used = fps[variant], cpu[variant]
        spread = f"min {min(values):.1f}, max {max(values):.1f}"
        print(
            f"{variant}: median {statistics.median(values):.1f} fps ({spread}); CPU per frame median "
            f"{statistics.median(used):.2f} ms (min {min(used):.2f}, max {max(used):.2f})"
        )
    for variant in VARIANTS[1:]:
        ratios = [a / b for a, b in zip(fps[variant], fps["plain"], strict=True)]
        met = sum(r >= 0.98 for r in ratios)
        print(
            f"{variant} / plain, per repetition: median {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f}; {met}/{len(ratios)} >= 0.98)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="v2")
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--repeat", type=int, default=7, help="subprocess streams per variant")
    parser.add_argument("--in-process", type=int, default=15, help="alternations in one process")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--churn-frames", type=int, default=20000, help="the churn's stream (320x240)")
    args = parser.parse_args()
    if not os.environ.get("EDGENET_MODEL_MIRROR") and (SHARED / "models").is_dir():
        os.environ["EDGENET_MODEL_MIRROR"] = str(SHARED / "models")
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.avi"
        make_clip(clip, args.frames, (width, height))
        print(
            f"{args.model}, 1 inference thread, {args.frames} frames {args.size} MJPG, {os.cpu_count()} cores"
        )
        sink_cost(args.model, (width, height))
        if args.in_process:
            in_process(args.model, clip, args.in_process)
        if args.repeat:
            fps, cpu = compare(clip, args.model, args.repeat)
            report(fps, cpu)
        if args.clients and args.rounds:
            long_clip = Path(folder) / "long.avi"
            make_clip(long_clip, args.churn_frames, (320, 240))
            print(f"churn: {args.clients} clients x {args.rounds} rounds against a running stream")
            churn(long_clip, args.model, args.clients, args.rounds)


if __name__ == "__main__":
    main()
