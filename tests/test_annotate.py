"""Annotated output (--annotate): drawing on a copy of real photos with real records (and a hand-made
detection record, the shape the detection task writes), annotated videos and folders written by the real CLI
and decoded back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_loop

from edgenet.errors import UsageError
from edgenet.sinks.annotate import PALETTE, draw, output_kind, safe_stem

CLIP_PHOTOS = ("owl.jpg", "hot_dog.jpg", "parrot.jpg", "cat_720p.jpg")


def read(path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def video_frames(path: Path) -> tuple[list[np.ndarray], float]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    rate = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, rate


def write_clip(path: Path, photos: list[Path], frames: int, size=(320, 240), rate: float = 30.0) -> list:
    """An MJPG clip cycling through the photos; returns the frames as written."""
    import cv2

    pictures = [cv2.resize(read(p), size, interpolation=cv2.INTER_AREA) for p in photos]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), rate, size)
    written = [pictures[index % len(pictures)] for index in range(frames)]
    for picture in written:
        writer.write(picture)
    writer.release()
    return written


def test_draw_classification_on_a_copy(cli, images):
    """A real record of the real model on a real photo: the top-k block top-left, the latency bottom-left,
    everything else untouched, and the frame the model saw left as it was."""
    run = cli("classify", str(images / "owl.jpg"), "--format", "jsonl", "--top-k", "3")
    record = json.loads(run.stdout)
    photo = read(images / "owl.jpg")
    before = photo.copy()
    annotated = draw(photo, record)
    assert np.array_equal(photo, before) and annotated is not photo  # drawn on a copy
    height, width = photo.shape[:2]
    assert difference(annotated[:40, :120], photo[:40, :120]) > 20  # the labels' dark box
    assert difference(annotated[-20:, :120], photo[-20:, :120]) > 20  # the latency line
    assert np.array_equal(annotated[height // 2 :, width // 2 :], photo[height // 2 :, width // 2 :])


def test_draw_detection_boxes_from_the_record(images):
    """Boxes are drawn where the record says, in the pixels of the original frame, in their class's colour;
    a nested classification and a non-ASCII label draw too; `scale` draws the same boxes on a smaller copy."""
    photo = read(images / "pets.jpg")
    record = {
        "source": "pets.jpg",
        "frame": 0,
        "detections": [
            {
                "index": 17,
                "label": "dog",
                "score": 0.91,
                "box": {"xmin": 40, "ymin": 60, "xmax": 300, "ymax": 330},
            },
            {
                "index": 16,
                "label": "Hündin",
                "score": 0.55,
                "box": {"xmin": 330, "ymin": 150, "xmax": 500, "ymax": 420},
                "classification": {"top_k": [{"index": 3, "label": "Boston bull", "score": 0.8}]},
            },
        ],
        "latency_ms": {"inference": 12.3, "total": 20.1},
    }
    annotated = draw(photo, record)
    colour = np.array(PALETTE[17 % len(PALETTE)])
    assert (annotated[200, 40] == colour).all() and (
        annotated[330, 170] == colour
    ).all()  # left, bottom edges
    assert (annotated[300, 500] == np.array(PALETTE[16 % len(PALETTE)])).all()
    assert np.array_equal(annotated[100:140, 120:220], photo[100:140, 120:220])  # inside a box: untouched
    small = photo[::2, ::2].copy()
    half = draw(small, record, scale=0.5)
    assert (half[100, 20] == colour).all()  # the same box at half the size
    empty = draw(photo, {**record, "detections": []})
    assert np.array_equal(empty[: photo.shape[0] // 2], photo[: photo.shape[0] // 2])  # nothing found: no box


def test_output_kinds_and_names():
    assert output_kind("out.mp4") == output_kind("OUT.AVI") == output_kind("x/y.mkv") == "video"
    assert output_kind("annotated") == output_kind("annotated/") == "folder"
    for wrong in ("out.jpg", "out.webm", "x.mts"):
        with pytest.raises(UsageError, match="--annotate"):
            output_kind(wrong)
    assert safe_stem("camera:0") == "camera_0" and safe_stem("/a/b/Ünïcode pic.JPG") == "n_code_pic"
    assert safe_stem("rtsp://10.0.0.2:554/stream") == "stream"


@pytest.mark.parametrize("name", ["out.mp4", "out.avi", "out.mkv"])
def test_annotated_video_of_a_video_file(cli, images, tmp_path, name):
    """`--video clip.avi --annotate out.mp4`: every frame, in order, at the clip's rate and size, the drawn
    corner changed and the rest of the picture the clip's."""
    clip = tmp_path / "clip.avi"
    written = write_clip(clip, [images / p for p in CLIP_PHOTOS], 24, rate=24.0)
    out = tmp_path / name
    run = cli("classify", "--video", str(clip), "--annotate", str(out), "--format", "jsonl", "--quiet")
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 24
    frames, rate = video_frames(out)
    assert len(frames) == 24 and rate == pytest.approx(24.0, abs=0.01)
    for frame, original in zip(frames, written, strict=True):
        assert frame.shape == original.shape
        assert difference(frame[:30, :100], original[:30, :100]) > 20  # the labels
        assert difference(frame[120:200, 160:300], original[120:200, 160:300]) < 12  # the picture (lossy)


def test_annotated_video_keeps_real_time_with_every(cli, images, tmp_path):
    clip = tmp_path / "clip.avi"
    write_clip(clip, [images / p for p in CLIP_PHOTOS], 30, rate=30.0)
    out = tmp_path / "every3.avi"
    run = cli(
        "classify", "--video", str(clip), "--every", "3", "--annotate", str(out), "--quiet", "-f", "jsonl"
    )
    assert run.returncode == 0, run.stderr
    frames, rate = video_frames(out)
    assert len(frames) == 10 and rate == pytest.approx(10.0, abs=0.01)


def test_annotated_folder_of_images(cli, images, tmp_path):
    """`photos/ --annotate out/`: one JPEG per image, named after it, the size of the original; two inputs
    with the same name do not overwrite each other; a broken image gets none."""
    inbox = tmp_path / "inbox"
    (inbox / "more").mkdir(parents=True)
    for name in ("owl.jpg", "parrot.jpg"):
        (inbox / name).write_bytes((images / name).read_bytes())
    (inbox / "more" / "owl.jpg").write_bytes((images / "hot_dog.jpg").read_bytes())
    (inbox / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    run = cli("classify", str(inbox), "--annotate", str(out), "--format", "jsonl")
    assert run.returncode == 1  # the broken image's error record
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == 4
    assert sorted(p.name for p in out.iterdir()) == ["owl-2.jpg", "owl.jpg", "parrot.jpg"]
    owls = [r["source"] for r in records if r["source"].endswith("owl.jpg")]  # in the order of the run
    for name, source in (("owl.jpg", owls[0]), ("owl-2.jpg", owls[1]), ("parrot.jpg", inbox / "parrot.jpg")):
        annotated, original = read(out / name), read(source)
        assert annotated.shape == original.shape
        assert difference(annotated[:40, :120], original[:40, :120]) > 20
        height, width = original.shape[:2]
        assert difference(annotated[height // 2 :, width // 2 :], original[height // 2 :, width // 2 :]) < 6


def test_annotated_frames_of_a_stream_into_a_folder(cli, images, tmp_path):
    clip = tmp_path / "walk.avi"
    write_clip(clip, [images / p for p in CLIP_PHOTOS], 6)
    out = tmp_path / "frames"
    run = cli("classify", "--video", str(clip), "--annotate", str(out), "--quiet", "-f", "jsonl")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"walk-{n:06d}.jpg" for n in range(6)]


@pytest.mark.parametrize(
    "args, words",
    [
        (["IMAGES", "--annotate", "OUT/x.mp4"], "a video is made from a stream"),
        (["IMAGES", "--annotate", "OUT/x.jpg"], "give a folder"),
        (
            ["--video", "IMAGES/../nothing.avi", "--annotate", "OUT/missing/x.mp4"],
            "existing, writable folder",
        ),
        (["IMAGES", "--annotate", "FILE"], "a file is in the way"),
    ],
)
def test_annotate_usage_errors_exit_2(cli, images, tmp_path, args, words):
    (tmp_path / "file").write_text("x")
    values = [
        a.replace("IMAGES", str(images)).replace("OUT", str(tmp_path)).replace("FILE", str(tmp_path / "file"))
        for a in args
    ]
    run = cli("classify", *values)
    assert run.returncode == 2 and words in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


@pytest.mark.parametrize("frames", [30, 6])
def test_a_cameras_annotated_video_plays_at_the_rate_its_records_came(images, tmp_path, frames):
    """A camera (cv2.VideoCapture on a clip, as for /dev/videoN, through the camera code path): the video's
    rate is measured over its first 10 records (or all of them, for a run shorter than that), and every
    frame with a record is in it."""
    import cv2

    from edgenet.cameras import CameraFrames
    from edgenet.model import open_model
    from edgenet.sinks.annotate import AnnotatedVideo

    clip = tmp_path / "camera.avi"
    write_clip(clip, [images / p for p in CLIP_PHOTOS], frames)
    model = open_model("v1-0.25-128", threads=1)
    camera = CameraFrames(lambda: cv2.VideoCapture(str(clip)), "camera:test", reconnect=0)
    out = tmp_path / "annotated.avi"
    records, outcome = run_loop(model, camera, live=True, sinks=[AnnotatedVideo(str(out))])
    good = [r for r in records if "error" not in r]
    assert records[-1]["error"].startswith("camera lost") and outcome.failure is not None  # the clip ended
    written, rate = video_frames(out)
    assert len(written) == len(good) and 1.0 <= rate <= 120.0
    assert difference(written[0][:30, :100], read(images / CLIP_PHOTOS[0])[:30, :100]) > 20
