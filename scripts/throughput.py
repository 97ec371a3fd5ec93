#!/usr/bin/env python3
"""A folder run's per-image time against the two-stage bound max(invoke, decode + preprocess), in one run.

    throughput.py [--photos 300] [--model v2] [--threads N] [--rounds 5] [--images DIR]

A folder of --photos files is made from the shared photos (cycled: sizes from 512 px to 1080p). Each round,
in this order with the order of the first two alternating:
1. `edgenet classify DIR -f jsonl -o FILE` (a fresh process, the console script): wall time, and the
   records' `time` from the first to the last image (steady state, start-up excluded);
2. `edgenet classify ONE -f jsonl -o FILE` on one of the photos: its start-up, so that
   (wall(DIR) - wall(ONE)) / (N - 1) is the per-image time seen from outside;
3. the bound, in this process, on the same photos with edgenet's own code: decode (edgenet.sources) +
   preprocess (the task's prepare) per photo, and the inference (the task's infer: set input, invoke, read
   the outputs) per photo, each summed over the folder. A two-stage pipeline (a capture thread decoding and
   preparing beside the thread that invokes) cannot beat max(mean invoke, mean decode + preprocess).
Prints the medians over rounds (and min-max) and the ratios per-image / bound; the target is <= 1.05. Also
the bound from the folder run's own records (each stage's mean inside the pipeline: decode + preprocess,
inference, postprocess), which carries the stages' contention and not the load's drift between measurements,
and the sequential sum over the per-image time: how many stages ran at once on average (1.0: no overlap,
as when other processes keep the second core busy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared"))


def make_folder(folder: Path, count: int, source: Path) -> list[Path]:
    photos = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    if not photos:
        sys.exit(f"no photos in {source}")
    made = []
    for index in range(count):
        photo = photos[index % len(photos)]
        target = folder / f"img_{index:04d}{photo.suffix.lower()}"
        shutil.copyfile(photo, target)
        made.append(target)
    return made


def classify(edgenet: str, inputs: str, extra: list[str], output: Path) -> tuple[float, list[dict]]:
    """Wall seconds of one `edgenet classify` process and its records."""
    command = [edgenet, "classify", inputs, "-f", "jsonl", "-o", str(output), *extra]
    output.unlink(missing_ok=True)  # -o appends (a cron job adds to its file): a fresh file per run
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    with open(output, encoding="utf-8") as handle:
        return wall, [json.loads(line) for line in handle]


def steady_ms(records: list[dict]) -> float:
    """Per image from the records' `time` (when each result was produced), first to last."""
    times = sorted(datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in records)
    return (times[-1] - times[0]) * 1000.0 / (len(times) - 1)


def bound_in_run(records: list[dict]) -> float:
    """The same bound from the folder run's own records: each stage's mean as measured inside the pipeline
    (decode + preprocess in the capture thread, inference in the main thread, postprocess in the writer), so
    contention between the stages is in it and load that changes between measurements is not."""
    count = len(records)
    stages = [
        sum(r["latency_ms"]["decode"] + r["latency_ms"]["preprocess"] for r in records) / count,
        sum(r["latency_ms"]["inference"] for r in records) / count,
        sum(r["latency_ms"]["postprocess"] for r in records) / count,
    ]
    return max(stages)


def bound_round(model, paths: list[str]) -> tuple[float, float]:
    """(mean decode + preprocess ms, mean inference ms) per photo, sequentially, with edgenet's own code."""
    from edgenet.sources import image_frames

    prepared, inferred = 0.0, 0.0
    for frame in image_frames(paths):
        if frame.error is not None:
            sys.exit(f"{frame.source}: {frame.error}")
        started = time.perf_counter_ns()
        tensor, context = model.task.prepare(frame.image)
        middle = time.perf_counter_ns()
        model.task.infer(tensor, context)
        ended = time.perf_counter_ns()
        prepared += frame.decode_ms + (middle - started) / 1e6
        inferred += (ended - middle) / 1e6
    return prepared / len(paths), inferred / len(paths)


def spread(values: list[float], digits: int = 3) -> str:
    return (
        f"{statistics.median(values):.{digits}f} (min {min(values):.{digits}f}, max {max(values):.{digits}f})"
    )


def measure(args, folder: Path, photos: list[Path], work: Path) -> dict:
    from edgenet.model import ModelRequest, open_model

    extra = (["--model", args.model] if args.model else []) + (
        ["--threads", str(args.threads)] if args.threads else []
    )
    model = open_model(ModelRequest(model=args.model, threads=args.threads))
    edgenet = str(Path(sys.executable).with_name("edgenet"))
    paths = [str(p) for p in photos]
    bound_round(model, paths[:12])  # warm-up: first inference, file cache
    names = ("wall_dir", "wall_one", "outside", "records", "prepare", "infer", "bound", "in_run")
    rows = {k: [] for k in names}
    for number in range(args.rounds):
        runs = [("dir", str(folder)), ("one", paths[0])]
        for kind, inputs in runs if number % 2 == 0 else reversed(runs):
            wall, records = classify(edgenet, inputs, extra, work / f"{kind}.jsonl")
            rows[f"wall_{kind}"].append(wall)
            if kind == "dir":
                if len(records) != len(paths):
                    sys.exit(f"{len(records)} records for {len(paths)} photos")
                rows["records"].append(steady_ms(records))
                rows["in_run"].append(bound_in_run(records))
        prepare, infer = bound_round(model, paths)
        rows["prepare"].append(prepare)
        rows["infer"].append(infer)
        rows["bound"].append(max(prepare, infer))
        rows["outside"].append((rows["wall_dir"][-1] - rows["wall_one"][-1]) * 1000 / (len(paths) - 1))
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    rows["model"] = model.describe()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--model", default=None, help="zoo name (default: edgenet's default model)")
    parser.add_argument("--threads", type=int, default=None, help="default: what classify uses here")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", default=str(SHARED / "images"), help="photos to cycle through")
    args = parser.parse_args()
    if not os.environ.get("EDGENET_MODEL_MIRROR") and (SHARED / "models").is_dir():
        os.environ["EDGENET_MODEL_MIRROR"] = str(SHARED / "models")
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder = work / "photos"
        folder.mkdir()
        photos = make_folder(folder, args.photos, Path(args.images))
        rows = measure(args, folder, photos, work)
    ratio_records = [r / b for r, b in zip(rows["records"], rows["bound"], strict=True)]
    ratio_outside = [o / b for o, b in zip(rows["outside"], rows["bound"], strict=True)]
    print(f"{args.photos} photos, {args.rounds} rounds, {os.cpu_count()} cores, {rows['model']}")
    ratio_in_run = [r / b for r, b in zip(rows["records"], rows["in_run"], strict=True)]
    print(f"decode + preprocess per photo, ms:      {spread(rows['prepare'])}")
    print(f"inference per photo, ms:                {spread(rows['infer'])}")
    print(f"bound max(the two), ms:                 {spread(rows['bound'])}")
    print(f"folder run per image (records), ms:     {spread(rows['records'])}")
    print(f"folder run per image (wall - one), ms:  {spread(rows['outside'])}")
    print(f"start-up + one image (wall), s:         {spread(rows['wall_one'])}")
    print(f"ratio per image / bound (records):      {spread(ratio_records)}  (target <= 1.05)")
    print(f"ratio per image / bound (wall - one):   {spread(ratio_outside)}")
    print(f"bound from the run's own records, ms:   {spread(rows['in_run'])}")
    print(f"ratio per image / that bound:           {spread(ratio_in_run)}  (how well the stages overlap)")
    sums = [p + i for p, i in zip(rows["prepare"], rows["infer"], strict=True)]
    cores = [total / r for total, r in zip(sums, rows["records"], strict=True)]
    print(f"sequential sum (no overlap at all), ms: {spread(sums)}")
    print(f"  sum / per image (records):            {spread(cores)}  (2.0 = both stages fully overlapped)")
    shares = [p / i for p, i in zip(rows["prepare"], rows["infer"], strict=True)]
    print(f"decode + preprocess / inference:        {spread(shares)}")


if __name__ == "__main__":
    main()
