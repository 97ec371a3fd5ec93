"""A soak of the promises edgenet makes to unattended runs, with counts of results lost, duplicated and
corrupted (issue 12):

1. kill -9 at random points: runs on one --state and one --output over N images, each killed after a random
   delay, until a run finds nothing new; then every image must have a record, and no line may be partial.
2. a broker killed and restarted during a run (--mqtt, a real Mosquitto): every record must reach a subscriber
   whose session the broker keeps, once the broker is back (a later run drains what waits).
3. a full disk (a small tmpfs, as root; else RLIMIT_FSIZE): the run stops with exit 4, the output holds only
   whole records, and a run with room finishes the job without losing or repeating a record.
4. a corrupt state file: moved aside with a warning, rebuilt; every image gets a record.

    .venv/bin/python scripts/soak.py --images 400 --kills 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))


def edgenet(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgenet", *args]


def make_images(folder: Path, count: int, shared: Path) -> list[str]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    sources = [cv2.imread(str(p)) for p in sorted((shared / "images").glob("*.bmp"))]
    for i in range(count):
        image = sources[i % len(sources)]
        h, w = image.shape[:2]
        top, left = (i * 7) % (h - 120), (i * 13) % (w - 160)
        cv2.imwrite(str(folder / f"img_{i:04d}.jpg"), image[top : top + 120, left : left + 160])
    return sorted(str(p) for p in folder.iterdir())


def read_output(path: Path) -> tuple[list[dict], int]:
    """(records, partial or corrupt lines)."""
    if not path.exists():
        return [], 0
    records, bad = [], 0
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        bad += 1  # the last line has no newline: partial
        lines.pop()
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            bad += 1
    return records, bad


def tally(name: str, expected: list[str], records: list[dict], bad: int, extra: str = "") -> dict:
    sources = [r["source"] for r in records if "source" in r]
    lost = sorted(set(expected) - set(sources))
    duplicated = len(sources) - len(set(sources))
    row = {"case": name, "images": len(expected), "records": len(records), "lost": len(lost)}
    row.update({"duplicated": duplicated, "corrupt lines": bad, "notes": extra})
    return row


def soak_kills(work: Path, images: list[str], folder: Path, kills: int, env: dict) -> dict:
    state, output = work / "kill.state", work / "kill.jsonl"
    args = ["classify", str(folder), "-m", "v1-0.5-160", "-t", "1", "-f", "jsonl", "-q"]
    args += ["--state", str(state), "--output", str(output)]
    started = time.monotonic()
    subprocess.run(edgenet(*args[:1], images[0], *args[2:8]), env=env, capture_output=True)  # warm caches
    probe = time.monotonic() - started
    done_kills, runs = 0, 0
    while True:
        runs += 1
        process = subprocess.Popen(edgenet(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done_kills < kills:
            time.sleep(random.uniform(0.05, max(0.3, probe * 3)))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                done_kills += 1
        process.wait()
        _, stderr = process.communicate()
        if process.returncode == 0 and b"nothing new" in stderr:
            break
        if runs > kills * 3 + 20:
            break
    records, bad = read_output(output)
    return tally(f"kill -9 x{done_kills}", images, records, bad, f"{runs} runs")


def soak_broker(work: Path, images: list[str], folder: Path, env: dict) -> dict:
    from broker import Broker, Subscriber

    broker = Broker(work, persistent=True)
    subscriber = Subscriber(broker, "edgenet/soak/results", persistent=True)
    broker.wait_saved()
    output = work / "mqtt.jsonl"
    args = [
        "classify",
        str(folder),
        "-m",
        "v1-0.5-160",
        "-t",
        "1",
        "-f",
        "jsonl",
        "-q",
        "--output",
        str(output),
    ]
    args += ["--mqtt", broker.address, "--mqtt-topic", "edgenet/soak"]
    process = subprocess.Popen(edgenet(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(random.uniform(0.5, 1.5))
    broker.kill()
    time.sleep(random.uniform(0.5, 2.0))
    broker.start()
    process.wait()
    drain = subprocess.run(edgenet("classify", images[0], *args[2:9], "--mqtt", broker.address,
                                   "--mqtt-topic", "edgenet/soak"), env=env, capture_output=True)  # fmt: skip
    received = lambda: {json.loads(p)["source"] for p in subscriber.payloads("edgenet/soak/results")}  # noqa: E731
    subscriber.wait_for(lambda _m: received() >= set(images), 60)
    records, bad = read_output(output)
    missing = set(images) - received()
    subscriber.close()
    broker.stop()
    row = tally("broker killed and restarted", images, records, bad)
    row["notes"] = f"{len(missing)} records never reached the broker; drain run exit {drain.returncode}"
    return row


def soak_full_disk(work: Path, images: list[str], folder: Path, env: dict) -> dict:
    small = work / "small"
    small.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)]).returncode == 0
    )
    output = small / "out.jsonl"
    state = work / "disk.state"
    args = ["classify", str(folder), "-m", "v1-0.5-160", "-f", "jsonl", "-q", "--state", str(state)]

    def limited():
        if not mounted:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    full = subprocess.run(
        edgenet(*args, "--output", str(output)), env=env, capture_output=True, preexec_fn=limited
    )
    first, bad = read_output(output)
    kept = work / "kept.jsonl"
    shutil.copy(output, kept)
    if mounted:
        subprocess.run(["umount", str(small)])
    rest = subprocess.run(edgenet(*args, "--output", str(kept)), env=env, capture_output=True)
    records, bad_after = read_output(kept)
    how = "tmpfs 64 KiB" if mounted else "RLIMIT_FSIZE 64 KiB"
    notes = f"{how}: exit {full.returncode} after {len(first)} records, then exit {rest.returncode}"
    return tally("full disk", images, records, bad + bad_after, notes)


def soak_corrupt_state(work: Path, images: list[str], folder: Path, env: dict) -> dict:
    state, output = work / "corrupt.state", work / "corrupt.jsonl"
    args = [
        "classify",
        str(folder),
        "-m",
        "v1-0.5-160",
        "-f",
        "jsonl",
        "-q",
        "--state",
        str(state),
        "--output",
        str(output),
    ]
    process = subprocess.Popen(edgenet(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(0.5, 1.5))
    process.send_signal(signal.SIGKILL)
    process.wait()
    for suffix in ("", "-wal", "-shm"):  # checkpointed or not, the file is damaged in its middle
        path = Path(str(state) + suffix)
        if path.exists() and path.stat().st_size > 8192:
            with open(path, "r+b") as handle:
                handle.seek(4096)
                handle.write(os.urandom(4096))
    again = subprocess.run(edgenet(*args), env=env, capture_output=True, text=True)
    records, bad = read_output(output)
    moved = "moved" in again.stderr
    notes = f"rerun exit {again.returncode}, state moved aside: {moved}"
    return tally("corrupt state", images, records, bad, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", choices=("kills", "broker", "disk", "state"), default=None)
    args = parser.parse_args()
    random.seed(args.seed)
    shared = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared"))
    with tempfile.TemporaryDirectory(prefix="edgenet-soak-") as scratch:
        work = Path(scratch)
        env = dict(os.environ, EDGENET_HOME=str(work / "home"))
        env.setdefault("EDGENET_MODEL_MIRROR", str(shared / "models"))
        folder = work / "photos"
        images = make_images(folder, args.images, shared)
        cases = {
            "kills": lambda: soak_kills(work, images, folder, args.kills, env),
            "broker": lambda: soak_broker(work, images, folder, env),
            "disk": lambda: soak_full_disk(work, images, folder, env),
            "state": lambda: soak_corrupt_state(work, images, folder, env),
        }
        rows = [case() for name, case in cases.items() if args.only in (None, name)]
    keys = ("case", "images", "records", "lost", "duplicated", "corrupt lines", "notes")
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))
    return 1 if any(row["lost"] or row["corrupt lines"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
