"""--annotate and --save for `detect`: the same sinks as classify, fed detection records (boxes drawn where
the detector found them; label: conditions on the detected labels; the `saved` column in CSV)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

PHOTOS = ("grace_hopper.bmp", "owl.jpg", "hot_dog.jpg")


def inputs(images: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in PHOTOS:
        (folder / name).symlink_to(images / name)
    return folder


def test_detect_saves_the_frames_with_a_person_and_annotates_every_one(cli, images, tmp_path):
    import cv2

    photos = inputs(images, tmp_path / "in")
    kept, drawn = tmp_path / "kept", tmp_path / "drawn"
    run = cli(
        "detect", str(photos), "--model", "ssd-v1", "--save", str(kept), "--save-when", "label:person",
        "--annotate", str(drawn), "-f", "jsonl", "-q",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == len(PHOTOS)
    for record in records:
        labels = {d["label"] for d in record["detections"]}
        assert ("saved" in record) == ("person" in labels), record
        original = cv2.imread(record["source"])
        annotated = cv2.imread(str(drawn / (Path(record["source"]).stem + ".jpg")))
        assert annotated.shape == original.shape
        for found in record["detections"]:  # a box is drawn on each detection's edge
            box = found["box"]
            top = slice(int(box["ymin"]), int(box["ymin"]) + 2)
            across = slice(int(box["xmin"]) + 2, int(box["xmax"]) - 2)
            edge = np.abs(annotated[top, across].astype(int) - original[top, across].astype(int))
            assert edge.mean() > 20, (record["source"], found)
    person = [r for r in records if "saved" in r]
    assert [Path(r["source"]).name for r in person] == ["grace_hopper.bmp"]
    saved = Path(person[0]["saved"])
    assert saved.parent == kept and cv2.imread(str(saved)).shape == cv2.imread(person[0]["source"]).shape
    assert json.loads(saved.with_suffix(".json").read_text()) == person[0]
    assert sorted(p.name for p in kept.iterdir()) == [saved.name, saved.with_suffix(".json").name]


def test_detect_csv_names_the_saved_frame_on_each_of_its_rows(cli, images, tmp_path):
    photos = inputs(images, tmp_path / "in")
    run = cli(
        "detect", str(photos), "--model", "ssd-v1", "--save", str(tmp_path / "kept"), "--save-when", "change",
        "-f", "csv", "-q",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert rows and all(row["saved"] for row in rows)  # the first image is a change, and each differs
    by_image = {}
    for row in rows:
        by_image.setdefault(row["source"], set()).add(row["saved"])
    assert len(by_image) == len(PHOTOS) and all(len(saved) == 1 for saved in by_image.values())
    assert all(Path(next(iter(saved))).is_file() for saved in by_image.values())
