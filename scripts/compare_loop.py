#!/usr/bin/env python3
"""Per-image time of `edgenet classify` against a minimal sequential loop, in the same process and run.

    compare_loop.py [--images DIR] [--model v2] [--threads 2] [--rounds 5] [--passes 3]

edgenet side: what `edgenet classify DIR --format jsonl` runs once its model is open: image_frames ->
classify_frames (decode and preprocess in a prefetch thread, invoke, top-k with labels) -> a jsonl sink
(to /dev/null here), with its default resize (shorter side + centre crop).
Minimal side, the way the pycoral classify example does it: for each file, decode (cv2.imread), BGR->RGB,
resize the whole image to the input size, set_tensor, invoke, top-k by argsort, labels; nothing else.
Both use the same .tflite, thread count and XNNPACK; interpreters are built once, outside the timing.
Rounds alternate (edgenet, minimal, edgenet, ...) so that load on the machine hits both alike; each round
goes `--passes` times over every photo. Prints each side's median per-image time and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def default_images() -> str:
    shared = os.environ.get("EDGENET_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
    folder = os.path.join(shared, "images")
    if os.path.isdir(folder):
        return folder
    from edgenet import zoo

    return str(zoo.sample_images())


def edgenet_round(model, paths: list[str], passes: int) -> float:
    """The pipeline `edgenet classify` runs: the one loop, a jsonl record writer (to /dev/null)."""
    from edgenet.run.loop import Loop
    from edgenet.run.stop import StopSignals
    from edgenet.run.summary import RunSummary
    from edgenet.sinks import Sinks
    from edgenet.sinks.formats import open_record_sink
    from edgenet.sources import image_frames

    started = time.perf_counter()
    for _ in range(passes):
        summary = RunSummary()
        sinks = Sinks([open_record_sink("jsonl", os.devnull), summary])
        Loop(model, sinks, live=False, stop=StopSignals()).run(image_frames(paths), summary)
    elapsed = time.perf_counter() - started
    return elapsed * 1000 / (passes * len(paths))


def minimal_round(interpreter, labels: list[str], paths: list[str], passes: int, top_k: int = 5) -> float:
    import cv2
    import numpy as np

    detail = interpreter.get_input_details()[0]
    _, height, width, _ = detail["shape"]
    output_index = interpreter.get_output_details()[0]["index"]
    started = time.perf_counter()
    for _ in range(passes):
        for path in paths:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (int(width), int(height)))
            interpreter.set_tensor(detail["index"], image[None])
            interpreter.invoke()
            scores = interpreter.get_tensor(output_index)[0]
            best = np.argsort(scores)[::-1][:top_k]
            _ = [(int(i), labels[i] if i < len(labels) else str(i), float(scores[i])) for i in best]
    return (time.perf_counter() - started) * 1000 / (passes * len(paths))


def invoke_round(engine, runs: int) -> float:
    """invoke() alone on edgenet's own interpreter (input already set): the runtime's limit per image."""
    times = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        engine.invoke()
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default=None)
    parser.add_argument("--model", default="v2")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()

    from ai_edge_litert.interpreter import Interpreter

    from edgenet.model import open_model
    from edgenet.runtime import default_threads
    from edgenet.sources import expand_inputs

    threads = args.threads or default_threads(pipeline=True)
    paths = expand_inputs([args.images or default_images()])
    opened = open_model(args.model, threads=threads)
    engine = opened.engine
    if engine.input.dtype != "uint8":
        raise SystemExit(f"{args.model}: the minimal loop feeds uint8 pixels; pick a uint8-input model")
    interpreter = Interpreter(model_path=opened.path, num_threads=threads)
    interpreter.allocate_tensors()
    labels = opened.labels or []
    edgenet_round(opened, paths[:2], 1)  # warm both sides up (first inference, caches)
    minimal_round(interpreter, labels, paths[:2], 1)
    ours, minimal, invoke = [], [], []
    for _ in range(args.rounds):
        ours.append(edgenet_round(opened, paths, args.passes))
        minimal.append(minimal_round(interpreter, labels, paths, args.passes))
        invoke.append(invoke_round(engine, args.passes * len(paths)))
    ours_ms, minimal_ms = statistics.median(ours), statistics.median(minimal)
    invoke_ms = statistics.median(invoke)
    print(
        f"{len(paths)} photos x {args.passes} passes x {args.rounds} rounds, model {args.model} "
        f"({os.path.basename(opened.path)}), {threads} thread(s), delegate "
        f"{opened.placement.kind}, {engine.backend.name} {engine.backend.version}"
    )
    print(
        f"edgenet classify pipeline: {ours_ms:.2f} ms per image "
        f"(rounds: {', '.join(f'{v:.2f}' for v in ours)})"
    )
    print(
        f"minimal sequential loop:   {minimal_ms:.2f} ms per image "
        f"(rounds: {', '.join(f'{v:.2f}' for v in minimal)})"
    )
    print(f"invoke() alone (p50):      {invoke_ms:.2f} ms (rounds: {', '.join(f'{v:.2f}' for v in invoke)})")
    print(f"ratio edgenet / minimal: {ours_ms / minimal_ms:.3f}")
    print(f"ratio edgenet / invoke:  {ours_ms / invoke_ms:.3f}")
    print(f"ratio minimal / invoke:  {minimal_ms / invoke_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
