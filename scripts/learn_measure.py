#!/usr/bin/env python3
"""Figures for `edgenet learn`: how long learning takes, what the head costs per frame, and how accurate the
heads are on the shared flowers data (5 classes, every pair of classes, 20 and 5 photos per class).

    learn_measure.py time [--rounds 3] [--threads 2]      # `edgenet learn` on 100 photos, wall clock
    learn_measure.py head-cost [--runs 400] [--threads 1,2] [--backend ai_edge_litert|tflite_runtime]
    learn_measure.py accuracy [--draws 10]                # top-1 on flowers val of each head

head-cost builds the learned model once, then times invoke() of the extractor and of the learned model (same
input) in alternating order within one process, so load from other processes hits both alike; it prints the
medians and spread of each, and the median of the per-round difference (the head's cost).
accuracy evaluates each learned .tflite on the val photos with a raw interpreter, prepared as classify does.
Run from the worktree: EDGENET_MODEL_MIRROR defaults to ../shared/models.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared"))
FLOWERS = SHARED / "datasets" / "flowers-fewshot"
EXTRACTOR = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
os.environ.setdefault("EDGENET_MODEL_MIRROR", str(SHARED / "models"))


def percentile(values, q):
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values) -> str:
    return (
        f"p50 {percentile(values, 50):.3f} ms (p10 {percentile(values, 10):.3f}, "
        f"p90 {percentile(values, 90):.3f}, n={len(values)})"
    )


def time_learn(rounds: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, EDGENET_HOME=os.path.join(folder, "home"))
        walls, inside = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "edgenet", "learn", str(FLOWERS / "train"), "-o",
                 os.path.join(folder, "m.tflite"), "-t", str(threads), "-f", "json"],
                capture_output=True, text=True, env=env, cwd=ROOT, check=True,
            )  # fmt: skip
            walls.append(time.perf_counter() - started)
            inside.append(json.loads(run.stdout)["seconds"])
        print(f"edgenet learn, 100 photos, {threads} threads, {rounds} runs (first run pulls the extractor):")
        print(f"  wall clock, process start to exit: median {statistics.median(walls):.2f} s, all {walls}")
        for key in inside[0]:
            print(f"  {key}: median {statistics.median(s[key] for s in inside):.3f} s")


def head_only_model(learned: str, path: str) -> None:
    """The learned head alone: a graph whose input is the extractor's output tensor (uint8 [1, 1, 1, 1024]),
    followed by the same ops and weights. Its invoke time is the head's cost (plus one invoke's overhead)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    from edgenet.heads import LinearHead
    from edgenet.learned_model import append_head, pack_model, read_model

    model = read_model(Path(learned).read_bytes())
    graph = model.subgraphs[0]
    weights, bias = (graph.tensors[int(i)] for i in graph.operators[-2].inputs[1:])
    head = LinearHead(
        "learned",
        np.frombuffer(bytes(model.buffers[weights.buffer].data), np.float32).reshape(weights.shape),
        np.frombuffer(bytes(model.buffers[bias.buffer].data), np.float32),
    )
    source = read_model(EXTRACTOR.read_bytes())
    embedding = source.subgraphs[0].tensors[int(source.subgraphs[0].outputs[0])]
    embedding.buffer = 0
    bare = schema.ModelT()
    bare.version, bare.operatorCodes, bare.buffers = 3, [], [schema.BufferT()]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = [embedding], []
    subgraph.inputs = subgraph.outputs = np.asarray([0], dtype=np.int32)
    bare.subgraphs = [subgraph]
    Path(path).write_bytes(append_head(pack_model(bare), head))


def time_models(interpreter_class, paths: dict, threads: int, runs: int) -> dict:
    """invoke() times of each model, in alternating order round after round (one input, set once)."""
    import numpy as np

    models = {}
    for name, path in paths.items():
        interpreter = interpreter_class(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        shape = tuple(int(v) for v in detail["shape"])
        interpreter.set_tensor(
            detail["index"], np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        )
        for _ in range(20):
            interpreter.invoke()
        models[name] = interpreter
    times = {name: [] for name in models}
    for round_index in range(runs):
        order = list(models) if round_index % 2 == 0 else list(reversed(list(models)))
        for name in order:
            started = time.perf_counter_ns()
            models[name].invoke()
            times[name].append((time.perf_counter_ns() - started) / 1e6)
    return times


def head_cost(runs: int, thread_counts: list[int], backend: str) -> None:
    interpreter_class = importlib.import_module(f"{backend}.interpreter").Interpreter
    with tempfile.TemporaryDirectory() as folder:
        learned, head = os.path.join(folder, "flowers.tflite"), os.path.join(folder, "head.tflite")
        env = dict(os.environ, EDGENET_HOME=os.path.join(folder, "home"))
        subprocess.run(
            [sys.executable, "-m", "edgenet", "learn", str(FLOWERS / "train"), "-o", learned],
            capture_output=True, env=env, cwd=ROOT, check=True,
        )  # fmt: skip
        head_only_model(learned, head)
        for threads in thread_counts:
            times = time_models(
                interpreter_class, {"extractor": str(EXTRACTOR), "learned": learned}, threads, runs
            )
            head_times = time_models(interpreter_class, {"head": head}, threads, runs * 5)["head"]
            difference = [b - a for a, b in zip(times["extractor"], times["learned"], strict=True)]
            print(f"{backend}, {threads} thread(s), {runs} alternating rounds:")
            for name, values in times.items():
                print(f"  {name:9s} {spread(values)}")
            print(f"  learned - extractor, per round: {spread(difference)}")
            print(
                f"  the head alone (DEQUANTIZE, L2_NORMALIZATION, FULLY_CONNECTED, SOFTMAX): "
                f"{spread(head_times)}"
            )


def accuracy(draws: int) -> None:
    import numpy as np

    from edgenet.embeddings import EmbeddingExtractor
    from edgenet.imaging import prepare, read_image
    from edgenet.learn import learn

    names = sorted(p.name for p in (FLOWERS / "val").iterdir() if p.is_dir())
    spec = EmbeddingExtractor(EXTRACTOR, threads=2).input
    val = {
        n: [prepare(read_image(str(p)), spec) for p in sorted((FLOWERS / "val" / n).iterdir())] for n in names
    }
    interpreter_class = importlib.import_module("ai_edge_litert.interpreter").Interpreter
    rng = np.random.default_rng(0)

    def top1(model: str, classes: list[str]) -> float:
        interpreter = interpreter_class(model_path=model, num_threads=2)
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
        hits = total = 0
        for index, name in enumerate(classes):
            for tensor in val[name]:
                interpreter.set_tensor(inp, tensor)
                interpreter.invoke()
                hits += int(interpreter.get_tensor(out).argmax() == index)
                total += 1
        return hits / total

    def run(classes: list[str], pick) -> dict:
        with tempfile.TemporaryDirectory() as folder:
            for name in classes:
                (Path(folder) / "train" / name).mkdir(parents=True)
                for photo in pick(sorted((FLOWERS / "train" / name).iterdir())):
                    os.symlink(photo, Path(folder) / "train" / name / photo.name)
            result = {}
            for head in ("imprinting", "logistic", "auto"):
                model = os.path.join(folder, f"{head}.tflite")
                report = learn(Path(folder) / "train", model, extractor=str(EXTRACTOR), head=head)
                result[head] = top1(model, classes)
                result[f"{head}_held_out"] = report.held_out[report.head].accuracy
                result["auto_chose"] = report.head if head == "auto" else result.get("auto_chose")
            return result

    def show(title: str, results: list[dict]) -> None:
        cells = ", ".join(
            f"{h} {statistics.mean(r[h] for r in results):.3f}" for h in ("imprinting", "logistic", "auto")
        )
        chose = ",".join(sorted({r["auto_chose"] for r in results}))
        print(f"  {title}: val top-1 {cells} (auto chose {chose}; n={len(results)})")

    print("flowers-fewshot val top-1 of the learned .tflite (ai-edge-litert):")
    show("5 classes, 20 photos each", [run(names, lambda ps: ps)])
    show("5 classes, the first 5 photos each", [run(names, lambda ps: ps[:5])])
    show(
        f"5 classes, 5 random photos each, {draws} draws",
        [run(names, lambda ps: list(rng.choice(ps, 5, replace=False))) for _ in range(draws)],
    )
    for a, b in itertools.combinations(names, 2):
        show(f"{a} vs {b}, 20 photos each", [run([a, b], lambda ps: ps)])
    pairs = [run(list(pair), lambda ps: ps) for pair in itertools.combinations(names, 2)]
    show("all 10 pairs, 20 photos each (mean)", pairs)
    show(
        "all 10 pairs, first 5 photos each (mean)",
        [run(list(pair), lambda ps: ps[:5]) for pair in itertools.combinations(names, 2)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("time", "head-cost", "accuracy"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="2")
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--backend", default="ai_edge_litert")
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    if args.what == "time":
        time_learn(args.rounds, int(args.threads))
    elif args.what == "head-cost":
        head_cost(args.runs, [int(t) for t in args.threads.split(",")], args.backend)
    else:
        accuracy(args.draws)


if __name__ == "__main__":
    main()
