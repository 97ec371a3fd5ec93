#!/usr/bin/env python3
"""Invoke time of the SSD detectors and what edgenet's detection decoding adds per frame.

    .venv/bin/python scripts/detect_latency.py --threads 1 --repeats 5 --runs 200

For each model: one interpreter (default op resolver, so XNNPACK as edgenet's `auto`), a real photo prepared
as `edgenet detect` does (whole frame resized to the input, RGB), a warm-up, then `--repeats` blocks of
`--runs` frames. Each block times, per frame, invoke() alone, reading the four outputs (get_tensor), decode()
right after them (threshold 0.5: what a detect loop pays per frame), and the same decode() again at once
(`decode_warm`: the same work with warm caches; the first numpy work after an invoke runs several times
slower, so `decode` is the figure to use). Each figure is the median over the blocks of the
block's p50, with the smallest and largest block p50 as the spread. Output identification runs once per model
and is timed once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("EDGENET_SHARED", HERE.parent.parent / "shared"))
MODELS = {
    "ssd-v1": "detection/ssd_mobilenet_v1_1_default_1.tflite",
    "ssd-v2-fpnlite": "detection/tf2_ssd_mobilenet_v2_fpnlite_320_coco17_float32.tflite",
}


def _ms(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


def measure(path: Path, image_path: Path, threads: int | None, repeats: int, runs: int, warmup: int) -> dict:
    from edgenet import detection
    from edgenet.imaging import prepare, read_image
    from edgenet.runtime import load_backend
    from edgenet.tensors import input_spec

    interpreter = load_backend().interpreter_class(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    spec = input_spec(interpreter.get_input_details()[0], interpreter._get_ops_details())
    details = interpreter.get_output_details()
    started = time.perf_counter_ns()
    mapping = detection.identify_outputs(
        details, detection.postprocess_outputs(interpreter._get_ops_details())
    )
    identify_ms = _ms(started)
    frame = read_image(str(image_path))
    size = (frame.shape[1], frame.shape[0])
    tensor = prepare(frame, spec, "stretch")
    labels = detection.coco_labels()
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(input_index, tensor)
    for _ in range(warmup):
        interpreter.invoke()
    blocks: dict[str, list[float]] = {"invoke": [], "read_outputs": [], "decode": [], "decode_warm": []}
    for _ in range(repeats):
        times: dict[str, list[float]] = {key: [] for key in blocks}
        for _ in range(runs):
            interpreter.set_tensor(input_index, tensor)
            started = time.perf_counter_ns()
            interpreter.invoke()
            times["invoke"].append(_ms(started))
            started = time.perf_counter_ns()
            outputs = [interpreter.get_tensor(d["index"]) for d in details]
            times["read_outputs"].append(_ms(started))
            started = time.perf_counter_ns()
            detection.decode(outputs, mapping, size, 0.5, labels=labels)
            times["decode"].append(_ms(started))
            started = time.perf_counter_ns()
            detection.decode(outputs, mapping, size, 0.5, labels=labels)
            times["decode_warm"].append(_ms(started))
        for key, values in times.items():
            blocks[key].append(statistics.median(values))
    result = {"model": path.name, "threads": threads, "identify_ms": round(identify_ms, 3)}
    for key, values in blocks.items():
        result[f"{key}_p50_ms"] = round(statistics.median(values), 4)
        result[f"{key}_spread_ms"] = [round(min(values), 4), round(max(values), 4)]
    result["decode_share_of_invoke"] = round(result["decode_p50_ms"] / result["invoke_p50_ms"], 5)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--image", type=Path, default=SHARED / "images" / "grace_hopper.bmp")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    args = parser.parse_args()
    for name in args.models.split(","):
        path = SHARED / "models" / MODELS[name]
        print(
            json.dumps(
                {
                    "name": name,
                    **measure(path, args.image, args.threads, args.repeats, args.runs, args.warmup),
                }
            )
        )


if __name__ == "__main__":
    main()
