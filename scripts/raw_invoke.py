#!/usr/bin/env python3
"""A raw `interpreter.invoke()` loop, to check that `edgenet bench` adds nothing to what it measures.

    raw_invoke.py MODEL.tflite --threads 2             # one raw measurement (p50 etc., or --json)
    raw_invoke.py --side-by-side --model v2 --threads 1,2 --rounds 5 [--against REV]
    raw_invoke.py --interleaved --model v2 --threads 1,2 --rounds 40 --runs 50

--side-by-side alternates, round after round, a fresh process of this raw loop and a fresh `edgenet bench`
process on the same file, thread count, runs, minimum time and warm-up, and prints each side's median p50 and
the ratio edgenet / raw. Same process conditions: one process per measurement on both sides, run in turn.
`--against REV` adds a third side, the `edgenet bench` of git revision REV (its edgenet/ extracted to a
temporary folder): before and after a change, each against the raw loop, in one run.
--interleaved does it inside one process instead: the raw interpreter and edgenet's Engine (bench.time_invoke)
on the same file, in short alternating blocks, so that load from other processes hits both sides alike.

The raw loop does what LiteRT's benchmark_model does from Python: build the interpreter (default op resolver,
so XNNPACK as in edgenet's `auto`), set a pseudo-random input once, warm up, then time invoke() alone with
time.perf_counter_ns until --runs and --min-seconds are both reached.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def percentile(values, q):
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def raw_loop(model_path: str, threads: int, runs: int, min_seconds: float, warmup: int) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    started = time.perf_counter_ns()
    interpreter = Interpreter(model_path=model_path, num_threads=threads)
    interpreter.allocate_tensors()
    init_ms = (time.perf_counter_ns() - started) / 1e6
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    shape = tuple(int(x) for x in detail["shape"])
    if detail["dtype"] == np.uint8:
        tensor = rng.integers(0, 256, size=shape, dtype=np.uint8)
    elif detail["dtype"] == np.int8:
        tensor = rng.integers(-128, 128, size=shape, dtype=np.int8)
    else:
        tensor = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    interpreter.set_tensor(detail["index"], tensor)
    invoke = interpreter.invoke
    clock = time.perf_counter_ns
    for _ in range(max(1, warmup)):
        invoke()
    samples = []
    loop_started = clock()
    at_least = loop_started + int(min_seconds * 1e9)
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        samples.append((t1 - t0) / 1e6)
        if len(samples) >= runs and t1 >= at_least:
            break
    return {
        "threads": threads,
        "runs": len(samples),
        "init_ms": init_ms,
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "mean": statistics.fmean(samples),
        "min": min(samples),
    }


def edgenet_bench_p50(model: str, threads: int, common: list[str], cwd: str | None = None) -> float:
    """`edgenet bench` in a fresh process: the one of this tree, or (cwd) the one extracted there."""
    ours = subprocess.run(
        [sys.executable, "-m", "edgenet", "bench", "--model", model, "--threads", str(threads)]
        + ["--format", "json", *common],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    return json.loads(ours.stdout)[0]["latency_ms"]["p50"]


def extract(revision: str, folder: str) -> str:
    """edgenet/ as of `revision`, in `folder` (run from there, `python -m edgenet` is that one)."""
    archive = subprocess.run(
        ["git", "archive", revision, "edgenet"], cwd=os.path.dirname(HERE), capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder


def side_by_side(
    model: str,
    thread_counts: list[int],
    rounds: int,
    runs: int,
    min_seconds: float,
    warmup: int,
    against: str | None = None,
) -> int:
    sys.path.insert(0, os.path.dirname(HERE))
    from edgenet import zoo

    path = str(zoo.resolve(model).path)
    if against:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            before = extract(against, folder)
            return _side_by_side(model, path, thread_counts, rounds, runs, min_seconds, warmup, before)
    return _side_by_side(model, path, thread_counts, rounds, runs, min_seconds, warmup, None)


def _side_by_side(model, path, thread_counts, rounds, runs, min_seconds, warmup, baseline) -> int:
    common = ["--runs", str(runs), "--min-seconds", str(min_seconds), "--warmup", str(warmup)]
    print(
        f"model {model} ({os.path.basename(path)}), {rounds} rounds, each side a fresh process per round, "
        f"{runs} runs / {min_seconds} s / {warmup} warm-up"
    )
    worst = 0.0
    for threads in thread_counts:
        raw_p50, edgenet_p50, before_p50 = [], [], []
        for number in range(rounds):
            sides = ["raw", "edgenet"] + (["before"] if baseline else [])
            for side in sides[number % len(sides) :] + sides[: number % len(sides)]:  # rotate who goes first
                if side == "raw":
                    raw = subprocess.run(
                        [sys.executable, __file__, path, "--threads", str(threads), "--json", *common],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    raw_p50.append(json.loads(raw.stdout)["p50"])
                elif side == "edgenet":
                    edgenet_p50.append(edgenet_bench_p50(model, threads, common))
                else:
                    before_p50.append(edgenet_bench_p50(model, threads, common, cwd=baseline))
        if before_p50:
            before = statistics.median(b / r for b, r in zip(before_p50, raw_p50, strict=True))
            print(
                f"threads {threads}: the --against revision's bench p50 "
                f"{statistics.median(before_p50):.4f} ms, median of per-round ratios to raw {before:.3f}"
            )
        raw_median, ours_median = statistics.median(raw_p50), statistics.median(edgenet_p50)
        ratio = ours_median / raw_median
        paired = statistics.median(o / r for o, r in zip(edgenet_p50, raw_p50, strict=True))
        worst = max(worst, abs(ratio - 1))
        print(
            f"threads {threads}: raw invoke p50 {raw_median:.4f} ms, "
            f"edgenet bench p50 {ours_median:.4f} ms, "
            f"ratio {ratio:.3f}, median of per-round ratios {paired:.3f}  "
            f"(raw rounds {', '.join(f'{v:.3f}' for v in raw_p50)}; "
            f"edgenet rounds {', '.join(f'{v:.3f}' for v in edgenet_p50)})"
        )
    print(f"largest deviation from 1.0: {worst * 100:.1f}%")
    return 0


def interleaved(model: str, thread_counts: list[int], blocks: int, block_runs: int, warmup: int) -> int:
    """One process: a raw interpreter and edgenet's Engine on the same file, timed in alternating blocks."""
    sys.path.insert(0, os.path.dirname(HERE))
    from ai_edge_litert.interpreter import Interpreter

    from edgenet import bench
    from edgenet.model import open_model

    for threads in thread_counts:
        engine = open_model(model, threads=threads, pipeline=False).engine
        raw = Interpreter(model_path=engine.model_path, num_threads=threads)
        raw.allocate_tensors()
        tensor = bench.random_input(engine.input)
        raw.set_tensor(raw.get_input_details()[0]["index"], tensor)
        raw_invoke, clock = raw.invoke, time.perf_counter_ns
        raw_samples, ours_samples = [], []
        for _ in range(max(1, warmup)):
            raw_invoke()
        for _ in range(blocks):
            timings = bench.time_invoke(engine, runs=block_runs, min_seconds=0.0, warmup=1)
            ours_samples += timings.samples_ms
            raw_invoke()  # same one warm-up run per block as time_invoke's
            for _ in range(block_runs):
                t0 = clock()
                raw_invoke()
                raw_samples.append((clock() - t0) / 1e6)
        raw_p50, ours_p50 = percentile(raw_samples, 50), percentile(ours_samples, 50)
        print(
            f"threads {threads}: {blocks} alternating blocks of {block_runs}: "
            f"raw invoke p50 {raw_p50:.4f} ms, edgenet time_invoke p50 {ours_p50:.4f} ms, "
            f"ratio {ours_p50 / raw_p50:.3f}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_file", nargs="?", help=".tflite file for one raw measurement")
    parser.add_argument("--threads", default="1", help="thread count (side by side: a comma list)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--side-by-side", action="store_true", help="alternate raw and edgenet bench processes"
    )
    parser.add_argument("--model", default="v2", help="zoo name or path for --side-by-side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="--side-by-side: also the bench of git revision REV")
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="one process, alternating blocks of --runs (--rounds blocks per side)",
    )
    args = parser.parse_args()
    if args.interleaved:
        counts = [int(x) for x in args.threads.split(",")]
        return interleaved(args.model, counts, args.rounds, args.runs, args.warmup)
    if args.side_by_side:
        counts = [int(x) for x in args.threads.split(",")]
        return side_by_side(
            args.model, counts, args.rounds, args.runs, args.min_seconds, args.warmup, args.against
        )
    if not args.model_file:
        parser.error("give a .tflite file, or --side-by-side")
    result = raw_loop(args.model_file, int(args.threads), args.runs, args.min_seconds, args.warmup)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"raw invoke: threads {result['threads']}, {result['runs']} runs, p50 {result['p50']:.4f} ms, "
            f"p90 {result['p90']:.4f} ms, mean {result['mean']:.4f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
