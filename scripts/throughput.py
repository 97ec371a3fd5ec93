#!/usr/bin/env python3
"""A folder run's per-image time against the two-stage bound max(invoke, decode + preprocess), in one run.

    throughput.py [--photos 300] [--model v2] [--threads N] [--rounds 5] [--images DIR] [--workers 1,2]

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

`--workers 1,2` runs the folder once per count of decode workers in every round (EDGENET_DECODE_WORKERS), in
an order rotated from round to round, prints each arm as above the per-image time of each arm over the
first one paired by round (the load of a round hits both alike), and the capture stage alone per arm (read,
decode and prepare by that many workers in this process, no inference): whether the workers decode in
parallel at all on this machine.
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


def classify(edgenet: str, inputs: str, extra: list[str], output: Path, workers: int | None = None):
    """Wall seconds of one `edgenet classify` process and its records (`workers`: EDGENET_DECODE_WORKERS)."""
    command = [edgenet, "classify", inputs, "-f", "jsonl", "-o", str(output), *extra]
    output.unlink(missing_ok=True)  # -o appends (a cron job adds to its file): a fresh file per run
    env = dict(os.environ)
    env.pop("EDGENET_DECODE_WORKERS", None)
    if workers is not None:
        env["EDGENET_DECODE_WORKERS"] = str(workers)
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    with open(output, encoding="utf-8") as handle:
        return wall, [json.loads(line) for line in handle]


def steady_ms(records: list[dict]) -> float:
    """Per image from the records' `time` (when each result was produced), first to last."""
    times = sorted(datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in records)
    return (times[-1] - times[0]) * 1000.0 / (len(times) - 1)


def bound_in_run(records: list[dict], workers: int = 1) -> float:
    """The same bound from the folder run's own records: each stage's mean as measured inside the pipeline
    (decode + preprocess in the capture workers, over their number, inference in the main thread,
    postprocess in the writer), so contention between the stages is in it and load that changes between
    measurements is not."""
    count = len(records)
    stages = [
        sum(r["latency_ms"]["decode"] + r["latency_ms"]["preprocess"] for r in records) / count / workers,
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


def capture_stage_ms(model, paths: list[str], workers: int | None) -> float:
    """Per image, the capture stage alone (read, decode, prepare; no inference) as a folder run does it with
    `workers` decode workers (None: edgenet's choice): how far more workers speed it up on this machine."""
    from edgenet.run.prefetch import Prefetcher
    from edgenet.run.workers import ImageReads, workers_for

    def prepare(frame):
        from edgenet.run.prefetch import Prepared

        tensor, context = model.task.prepare(frame.image)
        return Prepared(frame, tensor, context, 0.0, frame.error)

    reads = ImageReads(paths, workers=workers or workers_for(model))
    started = time.perf_counter()
    count = sum(1 for _ in Prefetcher(reads, prepare, live=False).items())
    return (time.perf_counter() - started) * 1000 / count


def spread(values: list[float], digits: int = 3) -> str:
    return (
        f"{statistics.median(values):.{digits}f} (min {min(values):.{digits}f}, max {max(values):.{digits}f})"
    )


ARM_NAMES = ("wall_dir", "outside", "records", "in_run", "capture")


def arm_name(workers: int | None) -> str:
    return "default" if workers is None else f"{workers} worker{'s' if workers > 1 else ''}"


def measure(args, folder: Path, photos: list[Path], work: Path) -> dict:
    """Per round: the folder run once per arm (--workers), the one-photo run and the bound, the runs in an
    order rotated from round to round so that drifting load hits every arm alike."""
    from edgenet.model import ModelRequest, open_model
    from edgenet.run.workers import workers_for

    extra = (["--model", args.model] if args.model else []) + (
        ["--threads", str(args.threads)] if args.threads else []
    )
    model = open_model(ModelRequest(model=args.model, threads=args.threads))
    edgenet = str(Path(sys.executable).with_name("edgenet"))
    paths = [str(p) for p in photos]
    bound_round(model, paths[:12])  # warm-up: first inference, file cache
    rows = {k: [] for k in ("wall_one", "prepare", "infer", "bound")}
    arms = {arm_name(n): {k: [] for k in ARM_NAMES} for n in args.workers}
    runs = [("one", None)] + [("dir", n) for n in args.workers]
    for number in range(args.rounds):
        shift = number % len(runs)
        order = runs[shift:] + runs[:shift]
        for kind, workers in order if number % 2 == 0 else reversed(order):
            inputs = paths[0] if kind == "one" else str(folder)
            wall, records = classify(edgenet, inputs, extra, work / f"{kind}.jsonl", workers)
            if kind == "one":
                rows["wall_one"].append(wall)
                continue
            if len(records) != len(paths):
                sys.exit(f"{len(records)} records for {len(paths)} photos")
            arm = arms[arm_name(workers)]
            arm["wall_dir"].append(wall)
            arm["records"].append(steady_ms(records))
            arm["in_run"].append(bound_in_run(records, workers or workers_for(model)))
        prepare, infer = bound_round(model, paths)
        rows["prepare"].append(prepare)
        rows["infer"].append(infer)
        rows["bound"].append(max(prepare, infer))
        for workers in args.workers:
            arms[arm_name(workers)]["capture"].append(capture_stage_ms(model, paths, workers))
        for arm in arms.values():
            arm["outside"].append((arm["wall_dir"][-1] - rows["wall_one"][-1]) * 1000 / (len(paths) - 1))
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    rows["model"] = model.describe()
    rows["arms"] = arms
    return rows


def report_arm(name: str, arm: dict, rows: dict) -> None:
    def ratio(values, over):
        return spread([v / o for v, o in zip(values, over, strict=True)])

    sums = [p + i for p, i in zip(rows["prepare"], rows["infer"], strict=True)]
    print(f"-- {name}")
    print(
        f"capture stage alone per image, ms:      {spread(arm['capture'])}  (no inference, in this process)"
    )
    print(f"folder run per image (records), ms:     {spread(arm['records'])}")
    print(f"folder run per image (wall - one), ms:  {spread(arm['outside'])}")
    print(f"ratio per image / bound (records):      {ratio(arm['records'], rows['bound'])}  (target <= 1.05)")
    print(f"ratio per image / bound (wall - one):   {ratio(arm['outside'], rows['bound'])}")
    print(f"bound from the run's own records, ms:   {spread(arm['in_run'])}")
    print(f"ratio per image / that bound:           {ratio(arm['records'], arm['in_run'])}  (stage overlap)")
    print(f"  sequential sum / per image (records): {ratio(sums, arm['records'])}  (2.0: fully overlapped)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--model", default=None, help="zoo name (default: edgenet's default model)")
    parser.add_argument("--threads", type=int, default=None, help="default: what classify uses here")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", default=str(SHARED / "images"), help="photos to cycle through")
    parser.add_argument(
        "--workers",
        default=None,
        help="decode workers to compare, e.g. 1,2 (EDGENET_DECODE_WORKERS per folder run; default: unset)",
    )
    args = parser.parse_args()
    args.workers = [int(n) for n in args.workers.split(",")] if args.workers else [None]
    if not os.environ.get("EDGENET_MODEL_MIRROR") and (SHARED / "models").is_dir():
        os.environ["EDGENET_MODEL_MIRROR"] = str(SHARED / "models")
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folder = work / "photos"
        folder.mkdir()
        photos = make_folder(folder, args.photos, Path(args.images))
        rows = measure(args, folder, photos, work)
    load = f"load {os.getloadavg()[0]:.1f}"
    print(f"{args.photos} photos, {args.rounds} rounds, {os.cpu_count()} cores, {load}, {rows['model']}")
    print(f"decode + preprocess per photo, ms:      {spread(rows['prepare'])}")
    print(f"inference per photo, ms:                {spread(rows['infer'])}")
    print(f"bound max(the two), ms:                 {spread(rows['bound'])}")
    print(f"start-up + one image (wall), s:         {spread(rows['wall_one'])}")
    shares = [p / i for p, i in zip(rows["prepare"], rows["infer"], strict=True)]
    print(f"decode + preprocess / inference:        {spread(shares)}")
    arms = rows["arms"]
    for name, arm in arms.items():
        report_arm(name, arm, rows)
    names = list(arms)
    for name in names[1:]:  # paired by round: the load of that round cancels out
        paired = [b / a for a, b in zip(arms[names[0]]["records"], arms[name]["records"], strict=True)]
        print(f"per image, {name} / {names[0]} (paired by round): {spread(paired)}  (< 1: {name} is faster)")


if __name__ == "__main__":
    main()
