"""`edgenet detect` and `edgenet eval --task detect`, end to end through the real console script."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from detect_reference import ReferenceDetector

from edgenet.imaging import read_image

SSD_V1 = "ssd_mobilenet_v1_1_default_1.tflite"
FPNLITE = "tf2_ssd_mobilenet_v2_fpnlite_320_coco17_float32.tflite"
METADATA = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_metadata.tflite"


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize(
    ("model", "file", "threshold"),
    [("ssd-v1", SSD_V1, "0.5"), ("ssd-v2-fpnlite", FPNLITE, "0.3"), (None, METADATA, "0.5")],
)
def test_grace_hopper_person_and_tie_equal_the_reference_within_a_pixel(
    cli, images, model_file, model, file, threshold
):
    """The issue's check, as written (no --threshold): the person and the tie, boxes within 1 px of an
    independently written pipeline at the model's default threshold (`threshold` here, for the reference):
    FPNLite scores the tie 0.35 and its catalog entry sets 0.3. The metadata model is given by path: labels
    embedded."""
    photo = images / "grace_hopper.bmp"
    run = cli("detect", str(photo), "-m", model or str(model_file(file)), "-f", "jsonl")
    assert run.returncode == 0, run.stderr
    (record,) = records(run.stdout)
    found = record["detections"]
    assert {"person", "tie"} <= {d["label"] for d in found}
    assert set(record["latency_ms"]) == {"decode", "preprocess", "inference", "postprocess", "total"}
    reference = ReferenceDetector(model_file(file)).detect(read_image(str(photo)), float(threshold))
    assert len(found) == len(reference)
    for mine, (index, score, box) in zip(found, reference, strict=True):
        assert mine["index"] == index and mine["score"] == pytest.approx(score, abs=1e-5)
        assert np.abs(np.array([mine["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")]) - box).max() <= 1.0


def test_detect_without_a_model_runs_the_default_detector(cli, images):
    """`edgenet detect PHOTO` alone (issue 14's own commands omit --model): the catalog's default detector,
    not the default classifier refused."""
    from edgenet import zoo

    run = cli("detect", str(images / "grace_hopper.bmp"), "-f", "jsonl")
    assert run.returncode == 0, run.stderr
    (record,) = records(run.stdout)
    assert record["model"] == zoo.default_model("detect") != zoo.default_model()
    assert {"person", "tie"} <= {d["label"] for d in record["detections"]}


def test_an_explicit_threshold_overrides_the_models_default(cli, images):
    photo = str(images / "grace_hopper.bmp")
    run = cli("detect", photo, "-m", "ssd-v2-fpnlite", "--threshold", "0.5", "-f", "jsonl")
    assert run.returncode == 0, run.stderr
    assert [d["label"] for d in records(run.stdout)[0]["detections"]] == ["person"]  # the tie (0.35) is not


def test_classes_max_detections_csv_and_table(cli, images):
    photo = str(images / "grace_hopper.bmp")
    only_ties = records(cli("detect", photo, "-m", "ssd-v1", "--classes", "tie", "-f", "jsonl", "-q").stdout)
    assert [d["label"] for d in only_ties[0]["detections"]] == ["tie"]
    best = records(cli("detect", photo, "-m", "ssd-v1", "--max-detections", "1", "-f", "jsonl", "-q").stdout)
    assert [d["label"] for d in best[0]["detections"]] == ["person"]
    run = cli(
        "detect", photo, str(images / "sunflower.bmp"), "-m", "ssd-v1", "--classes", "person,tie", "-f", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    hopper = [r for r in rows if r["source"] == photo]
    assert [r["detection"] for r in hopper] == [str(i) for i in range(len(hopper))] and len(hopper) >= 2
    assert float(hopper[0]["xmax"]) > float(hopper[0]["xmin"]) and hopper[0]["label"] == "person"
    flower = [r for r in rows if r["source"].endswith("sunflower.bmp")]
    assert len(flower) == 1 and flower[0]["label"] == "" and flower[0]["error"] == ""  # a frame without any
    table = cli("detect", photo, "-m", "ssd-v1", "-f", "table")
    assert table.returncode == 0 and "person 0.72" in table.stderr and "tie 0.66" in table.stderr


def test_unknown_class_names_are_one_line_usage_errors(cli, images):
    run = cli("detect", str(images / "cat.bmp"), "-m", "ssd-v1", "--classes", "unicorn")
    assert run.returncode == 2 and "no class 'unicorn'" in run.stderr and "Traceback" not in run.stderr


def test_each_command_refuses_the_other_kind_of_model_naming_the_right_one(cli, images, model_file):
    photo = str(images / "cat.bmp")
    for model in ("ssd-v1", str(model_file(SSD_V1))):
        run = cli("classify", photo, "-m", model)
        assert (
            run.returncode == 3 and "use edgenet detect" in run.stderr and len(run.stderr.splitlines()) == 1
        )
    for model in ("v2", str(model_file("mobilenet_v1_0.25_128_quant.tflite"))):
        run = cli("detect", photo, "-m", model)
        assert (
            run.returncode == 3 and "use edgenet classify" in run.stderr and len(run.stderr.splitlines()) == 1
        )


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("--crop-classes", "bird"), 2, "give --classify-crops MODEL too"),
        (
            ("--classify-crops", "v1-0.25-128", "--crop-classes", "unicorn"),
            2,
            "--crop-classes: the model has no",
        ),
        (("--classify-crops", "ssd-v1"), 3, "--classify-crops ssd-v1: a detector cannot name the crops"),
        (("--classes", "9999"), 2, "--classes: class 9999 is past the model's"),
    ],
)
def test_crop_options_misused_are_one_line_errors_naming_the_option(cli, images, args, code, message):
    run = cli("detect", str(images / "cat.bmp"), "-m", "ssd-v1", "-f", "jsonl", *args)
    assert run.returncode == code and message in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not run.stdout


def test_the_bird_feeder_cascade_names_the_species(cli, images):
    """The issue's recipe: find the bird, name the species with the iNat bird classifier."""
    birds = images.parent / "datasets" / "birds"
    expected = {
        "franklins_gull_flickr_27580496642.jpg": "Franklin's Gull",
        "red_winged_blackbird_flickr_34603082862.jpg": "Red-winged Blackbird",
        "bird.bmp": "Black-capped Chickadee",
        "parrot.jpg": "Scarlet Macaw",
        "owl.jpg": "Burrowing Owl",
    }
    paths = [str(birds), *(str(images / name) for name in ("bird.bmp", "parrot.jpg", "owl.jpg"))]
    args = ("--classes", "bird", "--classify-crops", "v2-inat-bird", "--max-detections", "1", "-f", "jsonl")
    run = cli("detect", *paths, "-m", "ssd-v1", *args)
    assert run.returncode == 0, run.stderr
    named = {r["source"].rsplit("/", 1)[-1]: r for r in records(run.stdout)}
    assert set(named) == set(expected)
    for name, species in expected.items():
        (bird,) = named[name]["detections"]
        assert bird["label"] == "bird" and species in bird["classification"]["top_k"][0]["label"], name
        assert named[name]["latency_ms"]["classify"] > 0  # the crops' stage, apart from the detector's


def test_crop_classes_limit_what_is_classified(cli, images):
    run = cli(
        "detect", str(images / "grace_hopper.bmp"), "-m", "ssd-v1", "--classify-crops", "v2",
        "--crop-classes", "tie", "-f", "jsonl", "-q",
    )  # fmt: skip
    found = records(run.stdout)[0]["detections"]
    assert {d["label"] for d in found if "classification" in d} == {"tie"}
    assert any(d["label"] == "person" and "classification" not in d for d in found)


def test_detect_on_a_video_gives_a_record_per_frame(cli, tmp_path, images):
    import cv2

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (512, 600))
    for name in ("grace_hopper.bmp", "cat.bmp", "grace_hopper.bmp"):
        writer.write(cv2.resize(cv2.imread(str(images / name)), (512, 600)))
    writer.release()
    run = cli("detect", "--video", str(clip), "-m", "ssd-v1", "-f", "jsonl")
    assert run.returncode == 0, run.stderr
    found = records(run.stdout)
    assert [r["frame"] for r in found] == [0, 1, 2] and "captured" in found[0]
    assert "tie" in {d["label"] for d in found[0]["detections"]}
    assert "cat" in {d["label"] for d in found[1]["detections"]}
    assert "3 frames, 0 errors" in run.stderr


@pytest.fixture(scope="module")
def coco_folder(images):
    return images.parent / "datasets" / "coco-permissive"


def test_eval_detect_matches_pycocotools_on_the_reference_pipeline(cli, coco_folder, model_file):
    """The issue's check: edgenet's mAP within 0.3 points of pycocotools scoring an independent pipeline's
    detections of the same images against the shipped instances.json."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    run = cli("eval", "--task", "detect", str(coco_folder), "-m", "ssd-v1", "-f", "json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    truth = COCO(str(coco_folder / "instances.json"))
    reference = ReferenceDetector(model_file(SSD_V1))
    theirs = []
    for image in truth.dataset["images"]:
        path = next(coco_folder.rglob(image["file_name"]))
        for index, score, (x0, y0, x1, y1) in reference.detect(read_image(str(path))):
            theirs.append(
                {
                    "image_id": image["id"],
                    "category_id": index + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                }
            )
    evaluation = COCOeval(truth, truth.loadRes(theirs), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert report["map"] == pytest.approx(evaluation.stats[0] * 100, abs=0.3)
    assert report["ap50"] == pytest.approx(evaluation.stats[1] * 100, abs=0.3)
    assert (report["images"], report["errors"], report["task"]) == (39, 0, "detect")


def test_bench_and_models_info_understand_detectors(cli):
    bench = cli("bench", "-m", "ssd-v1", "-t", "1", "--runs", "3", "--min-seconds", "0", "-f", "json")
    assert bench.returncode == 0, bench.stderr
    assert json.loads(bench.stdout)[0]["latency_ms"]["p50"] > 0
    e2e = cli(
        "bench", "-m", "ssd-v1", "-t", "1", "--runs", "3", "--min-seconds", "0", "--mode", "e2e", "-f", "json"
    )
    assert e2e.returncode == 0 and json.loads(e2e.stdout)[0]["stages"]["inference"]["p50"] > 0
    info = json.loads(cli("models", "info", "ssd-v1", "-f", "json").stdout)
    assert info["task"] == "detect" and len(info["output_tensors"]) == 4
