"""Evidence (--save DIR --save-when COND): conditions, what is saved and named in the records, the quota
across runs, and kill -9 at random points of real runs never leaving a partial file."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from edgenet.errors import UsageError
from edgenet.sinks.conditions import Condition, Trigger, has_label, is_uncertain, parse_condition

PHOTOS = ("owl.jpg", "hot_dog.jpg", "parrot.jpg", "cat_720p.jpg")


def write_clip(path: Path, pictures: list[Path], runs: list[int], size=(320, 240)) -> list[int]:
    """An MJPG clip: runs[i] frames of pictures[i], one after the other; which picture each frame is."""
    import cv2

    loaded = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in pictures]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    which = []
    for number, count in enumerate(runs):
        for _ in range(count):
            writer.write(loaded[number % len(loaded)])
            which.append(number % len(loaded))
    writer.release()
    return which


def evidence(folder: Path) -> dict[str, set[str]]:
    """The evidence in a folder by stem: which extensions it has."""
    found: dict[str, set[str]] = {}
    for path in folder.iterdir():
        found.setdefault(path.stem, set()).add(path.suffix)
    return found


@pytest.mark.parametrize(
    "text, condition",
    [
        ("change", Condition("change")),
        ("label:person", Condition("label", label="person")),
        ("label:Egyptian cat>=0.5", Condition("label", label="Egyptian cat", score=0.5)),
        ("below:0.4", Condition("below", score=0.4)),
        ("every:30s", Condition("every", seconds=30.0)),
        ("every:5m", Condition("every", seconds=300.0)),
        ("every:500ms", Condition("every", seconds=0.5)),
        ("every:2", Condition("every", seconds=2.0)),
        ("every:0", Condition("every", seconds=0.0)),
    ],
)
def test_conditions_parse(text, condition):
    assert parse_condition(text) == condition


@pytest.mark.parametrize(
    "text",
    ["", "always", "change:1", "label:", "label:>=0.5", "label:cat>=1.5", "below:", "below:x", "every:soon"],
)
def test_malformed_conditions_are_usage_errors(text):
    with pytest.raises(UsageError) as failure:
        parse_condition(text)
    assert "--save-when" in str(failure.value) and "\n" not in str(failure.value)


def test_what_each_condition_means():
    cat = {
        "top_k": [{"index": 286, "label": "Egyptian cat", "score": 0.78}, {"label": "tabby", "score": 0.1}]
    }
    assert has_label(cat, "egyptian CAT") and has_label(cat, "Egyptian cat", 0.78)
    assert not has_label(cat, "Egyptian cat", 0.8) and not has_label(cat, "tabby")  # the top-1 only
    assert is_uncertain(cat, 0.8) and not is_uncertain(cat, 0.5) and is_uncertain({"top_k": []}, 0.1)
    birds = {
        "detections": [
            {
                "label": "bird",
                "score": 0.9,
                "classification": {"top_k": [{"label": "Blue Jay", "score": 0.4}]},
            }
        ]
    }
    assert has_label(birds, "bird", 0.9) and has_label(birds, "blue jay") and not has_label(birds, "cat")
    assert is_uncertain(birds, 0.5) and not is_uncertain({"detections": []}, 0.5)
    trigger = Trigger((Condition("change"), Condition("every", seconds=10.0)))
    assert trigger.reasons(cat, 286, 100.0) == ["change", "every:10s"]
    assert trigger.reasons(cat, 286, 105.0) == []
    assert trigger.reasons(cat, 285, 106.0) == ["change"]
    assert trigger.reasons(cat, 285, 110.0) == ["every:10s"]
    assert trigger.reasons({"source": "x", "error": "cannot decode"}, None, 200.0) == []  # no picture


def test_usage_errors_exit_2(cli, images, tmp_path):
    for args, words in [
        (["--save", str(tmp_path)], "--save DIR needs --save-when"),
        (["--save-when", "change"], "go with --save DIR"),
        (["--save", str(tmp_path), "--save-when", "sometimes"], "label:NAME[>=SCORE]"),
        (["--save", str(tmp_path), "--save-when", "change", "--save-max-mb", "0"], "above 0"),
        (["--serve", "nowhere"], "--serve nowhere"),
        (["--serve-token", "x"], "go with --serve"),
        (["--serve", "0", "--serve-linger", "nan"], "--serve-linger nan"),
        (["--serve", "0", "--serve-token", " "], "--serve-token is empty"),
    ]:
        run = cli("classify", str(images / "owl.jpg"), *args)
        assert run.returncode == 2 and words in run.stderr, (args, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1


def classify_clip(cli, clip: Path, folder: Path, *conditions: str, extra=()) -> list[dict]:
    when = [arg for condition in conditions for arg in ("--save-when", condition)]
    run = cli(
        "classify", "--video", str(clip), "--save", str(folder), *when, *extra, "-f", "jsonl", "--quiet"
    )
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_change_saves_the_frame_and_its_record_and_the_record_names_it(cli, images, tmp_path):
    import cv2

    clip = tmp_path / "clip.avi"
    which = write_clip(clip, [images / p for p in PHOTOS[:2]], [5, 5, 5])  # owl, hot dog, owl
    records = classify_clip(cli, clip, tmp_path / "keep", "change")
    tops = [r["top_k"][0]["index"] for r in records]
    changes = [n for n in range(len(tops)) if n == 0 or tops[n] != tops[n - 1]]
    cuts = [n for n in range(len(which)) if n == 0 or which[n] != which[n - 1]]
    assert set(cuts) <= set(changes)  # owl, hot dog, owl: the top class changes at each cut at least
    assert [r["frame"] for r in records if "saved" in r] == changes
    for record in records:
        if "saved" not in record:
            continue
        image = cv2.imread(record["saved"])
        assert image.shape == (240, 320, 3)
        sidecar = json.loads(Path(record["saved"]).with_suffix(".json").read_text())
        assert sidecar == record  # the record as written, its `saved` included
        assert Path(record["saved"]).parent == tmp_path / "keep"
    assert len(evidence(tmp_path / "keep")) == len(changes)


def test_label_below_and_every(cli, images, tmp_path):
    clip = tmp_path / "clip.avi"
    write_clip(clip, [images / p for p in PHOTOS], [3, 3, 3, 3])
    plain = classify_clip(cli, clip, tmp_path / "all", "every:0")
    assert all("saved" in r for r in plain)
    label = plain[4]["top_k"][0]["label"]  # whatever the model calls the second picture
    records = classify_clip(cli, clip, tmp_path / "label", f"label:{label.upper()}>=0.0")
    wanted = [r["frame"] for r in plain if r["top_k"][0]["label"] == label]
    assert [r["frame"] for r in records if "saved" in r] == wanted and wanted
    scores = sorted(r["top_k"][0]["score"] for r in plain)
    cut = (scores[0] + scores[-1]) / 2
    records = classify_clip(cli, clip, tmp_path / "below", f"below:{cut}")
    assert [r["frame"] for r in records if "saved" in r] == [
        r["frame"] for r in plain if r["top_k"][0]["score"] < cut
    ]
    records = classify_clip(cli, clip, tmp_path / "hourly", "every:1h")
    assert [r["frame"] for r in records if "saved" in r] == [0]


def test_the_quota_holds_oldest_first_across_runs(cli, images, tmp_path):
    clip = tmp_path / "clip.avi"
    write_clip(clip, [images / p for p in PHOTOS], [4, 4, 4, 4])
    folder = tmp_path / "keep"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "holiday.jpg").write_bytes((images / "owl.jpg").read_bytes())
    first = classify_clip(cli, clip, folder, "every:0")
    sizes = [
        os.path.getsize(r["saved"]) + os.path.getsize(Path(r["saved"]).with_suffix(".json")) for r in first
    ]
    quota_mb = 5.5 * (sum(sizes) / len(sizes)) / (1024 * 1024)  # room for about five frames
    second = classify_clip(cli, clip, folder, "every:0", extra=("--save-max-mb", f"{quota_mb:.6f}"))
    third = classify_clip(cli, clip, folder, "every:0", extra=("--save-max-mb", f"{quota_mb:.6f}"))
    kept = evidence(folder)
    ours = {stem for stem in kept if stem not in ("notes", "holiday")}
    total = sum(os.path.getsize(folder / (stem + ext)) for stem in ours for ext in kept[stem])
    assert total <= quota_mb * 1024 * 1024
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "holiday.jpg").exists()  # not ours
    newest = sorted(Path(r["saved"]).stem for r in third)[-len(ours) :]
    assert sorted(ours) == newest and 4 <= len(ours) <= 6  # the newest, whichever run made them
    assert all(kept[stem] == {".jpg", ".json"} for stem in ours)
    assert not any(Path(r["saved"]).exists() for r in first + second)  # the older runs' went first


def whole_jpeg(path: Path) -> bool:
    from PIL import Image

    data = path.read_bytes()
    if not data.endswith(b"\xff\xd9"):
        return False
    with Image.open(path) as image:
        image.load()  # raises on a truncated file
    return True


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def check_folder(folder: Path, records: Path, quota_bytes: int) -> tuple[int, int]:
    """The invariants after a kill; how many files were checked, and how many images were alone (the kill
    came between an image and its sidecar, or while the quota removed the oldest)."""
    kept = evidence(folder)
    assert not [name for name in os.listdir(folder) if not name.endswith((".jpg", ".json"))]  # no temporaries
    for stem, extensions in kept.items():
        assert ".jpg" in extensions, f"a sidecar without its image: {stem}"
        assert whole_jpeg(folder / (stem + ".jpg")), stem
        if ".json" in extensions:
            assert json.loads((folder / (stem + ".json")).read_text())["saved"].endswith(stem + ".jpg")
    total = sum(os.path.getsize(folder / (stem + ext)) for stem, exts in kept.items() for ext in exts)
    assert total <= quota_bytes
    oldest = min(kept) if kept else "~"
    for line in records.read_text().splitlines():  # a record names a file only once it is there whole
        named = Path(json.loads(line)["saved"])
        if named.stem > oldest:
            assert named.exists() and named.with_suffix(".json").exists(), named
        elif named.stem == oldest:  # the quota may have been removing it (sidecar first) when killed
            assert named.exists(), named
    alone = sum(extensions == {".jpg"} for extensions in kept.values())
    return sum(len(extensions) for extensions in kept.values()), alone


def test_kill_9_at_random_points_never_leaves_a_partial_file(images, tmp_path):
    """22 runs saving every frame under a quota, each killed with SIGKILL at a random point (after a random
    number of records, plus a random fraction of a frame): every JPEG is whole, every sidecar has its image,
    no temporary file is left, a record names only a file that is there, and the quota holds, across all
    the kills."""
    clip = tmp_path / "clip.avi"
    write_clip(clip, [images / p for p in PHOTOS], [150, 150, 150, 150], size=(640, 480))
    folder, records = tmp_path / "keep", tmp_path / "records.jsonl"
    quota_mb = 1.0
    rng = random.Random(1414)
    command = [sys.executable, "-m", "edgenet", "classify", "--video", str(clip), "--model", "v1-0.25-128"]
    command += ["--save", str(folder), "--save-when", "every:0", "--save-max-mb", str(quota_mb)]
    command += ["--format", "jsonl", "--output", str(records), "--quiet"]
    kills, checked, alone = 0, 0, 0
    for _trial in range(22):
        target = lines_in(records) + rng.randint(1, 40)
        process = subprocess.Popen(command, cwd=str(ROOT), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while lines_in(records) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
        assert process.poll() is None, process.stderr.read()  # killed during the run, not after it
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
        kills += 1
        files, lone = check_folder(folder, records, int(quota_mb * 1024 * 1024))
        checked, alone = checked + files, alone + lone
    print(f"{kills} kills, {lines_in(records)} records, {checked} files checked, {alone} images alone")
    assert kills == 22 and lines_in(records) >= 22


def test_atomic_writes_with_and_without_o_tmpfile(tmp_path, monkeypatch):
    """Linux's unnamed file linked in when whole; an existing name replaced through a hidden temporary file;
    the same without O_TMPFILE (vfat, other systems); temporaries a killed run left are removed at start."""
    from edgenet.sinks import atomic
    from edgenet.sinks.evidence import EvidenceFolder

    target = tmp_path / "a.jpg"
    atomic.write_atomic(str(target), b"first")
    atomic.write_atomic(str(target), b"second")
    assert target.read_bytes() == b"second" and os.listdir(tmp_path) == ["a.jpg"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    monkeypatch.delattr(os, "O_TMPFILE")
    atomic.write_atomic(str(tmp_path / "b.jpg"), b"third")
    assert (tmp_path / "b.jpg").read_bytes() == b"third" and sorted(os.listdir(tmp_path)) == [
        "a.jpg",
        "b.jpg",
    ]
    (tmp_path / ".edgenet-left.tmp").write_bytes(b"half")
    (tmp_path / "20261125-143000.123Z_cat_0.jpg").write_bytes(b"x" * 10)
    folder = EvidenceFolder(str(tmp_path))
    folder.scan()
    assert not (tmp_path / ".edgenet-left.tmp").exists()
    assert dict(folder.kept) == {"20261125-143000.123Z_cat_0": 10} and folder.total == 10  # ours only
