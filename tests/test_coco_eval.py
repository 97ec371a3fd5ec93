"""Detection ground truth (COCO JSON, YOLO labels) and COCO mAP, held against pycocotools on real data."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys

import numpy as np
import pytest
from detect_reference import ReferenceDetector

from edgenet import coco_eval, detection
from edgenet.coco_eval import category_map, coco_map, load_ground_truth, results_for_image
from edgenet.detection import Box, Detection
from edgenet.errors import UsageError
from edgenet.imaging import prepare, read_image
from edgenet.runtime import load_backend
from edgenet.tensors import input_spec

SSD_V1 = "ssd_mobilenet_v1_1_default_1.tflite"


@pytest.fixture(scope="module")
def coco_folder(images):
    folder = images.parent / "datasets" / "coco-permissive"
    if not folder.is_dir():
        pytest.fail(f"the COCO sample {folder} is missing (../shared/datasets)", pytrace=False)
    return folder


def _edgenet_detections(model_path, truth):
    """edgenet's core: whole frame to the input, decode every detection (no threshold) in original pixels."""
    interpreter = load_backend().interpreter_class(model_path=str(model_path))
    interpreter.allocate_tensors()
    spec = spec_of(interpreter)
    details = interpreter.get_output_details()
    mapping = detection.identify_outputs(
        details, detection.postprocess_outputs(interpreter._get_ops_details())
    )
    found = {}
    for image in truth.images:
        frame = read_image(image.path)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], prepare(frame, spec, "stretch"))
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in details]
        size = (image.width, image.height)
        found[image.image_id] = detection.decode(outputs, mapping, size, 0.0, labels=detection.coco_labels())
    return found


def _pycocotools_on_the_file(instances_path, results):
    """pycocotools alone, on the instances file as COCO ships it."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(instances_path))
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[0] * 100, evaluation.stats[1] * 100


def test_yolo_and_coco_ground_truth_agree(coco_folder):
    coco = load_ground_truth(coco_folder)
    yolo = load_ground_truth(coco_folder, "yolo")
    assert coco.kind == "coco" and yolo.kind == "yolo"
    raw = json.loads((coco_folder / "instances.json").read_text())
    crowd = sum(a["iscrowd"] for a in raw["annotations"])
    assert len(coco.annotations) == len(raw["annotations"]) and crowd > 0
    assert len(yolo.annotations) == len(raw["annotations"]) - crowd
    by_file = {image.path.rsplit("/", 1)[-1]: image for image in coco.images}
    names = dict(coco.categories)
    yolo_names = dict(yolo.categories)
    for image in yolo.images:
        twin = by_file[image.path.rsplit("/", 1)[-1]]
        assert (image.width, image.height) == (twin.width, twin.height)
        mine = sorted(
            (yolo_names[a["category_id"]], *np.round(a["bbox"], 0))
            for a in yolo.annotations
            if a["image_id"] == image.image_id
        )
        theirs = sorted(
            (names[a["category_id"]], *np.round(a["bbox"], 0))
            for a in coco.annotations
            if a["image_id"] == twin.image_id and not a["iscrowd"]
        )
        assert [m[0] for m in mine] == [t[0] for t in theirs]
        assert np.abs(np.array([m[1:] for m in mine]) - np.array([t[1:] for t in theirs])).max(initial=0) <= 1


def test_ssd_v1_map_matches_pycocotools_on_the_same_detections(coco_folder, model_file):
    path = model_file(SSD_V1)
    yolo = load_ground_truth(coco_folder, "yolo")
    coco = load_ground_truth(coco_folder, "coco")
    found = _edgenet_detections(path, yolo)
    results = []
    for image in yolo.images:
        results += results_for_image(
            image.image_id, found[image.image_id], category_map(detection.coco_labels(), yolo)
        )
    scores = coco_map(yolo, results)
    assert scores.detections == sum(len(v) for v in found.values()) and scores.objects == len(
        yolo.annotations
    )
    # the reference: another pipeline's detections, COCO ids k + 1, pycocotools on the shipped JSON
    reference = ReferenceDetector(path)
    ids = {image.path: image.image_id for image in coco.images}
    theirs = []
    for image in coco.images:
        for cls, score, (x0, y0, x1, y1) in reference.detect(read_image(image.path)):
            theirs.append(
                {
                    "image_id": ids[image.path],
                    "category_id": cls + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                }
            )
    expected_map, expected_ap50 = _pycocotools_on_the_file(coco_folder / "instances.json", theirs)
    assert scores.map == pytest.approx(expected_map, abs=0.3) and scores.ap50 == pytest.approx(
        expected_ap50, abs=0.3
    )
    assert 10 < scores.map < scores.ap50 < 100
    on_json = coco_map(
        coco,
        [
            r
            for image in coco.images
            for r in results_for_image(
                image.image_id,
                found[next(i.image_id for i in yolo.images if i.path == image.path)],
                category_map(detection.coco_labels(), coco),
            )
        ],
    )
    assert on_json.map == pytest.approx(expected_map, abs=0.01) and on_json.ap50 == pytest.approx(
        expected_ap50, abs=0.01
    )


def _perfect(truth, labels, score=1.0, crowd=False):
    """The ground truth's own boxes as detections, mapped back to the model's class indices."""
    to_class = {cid: k for k, cid in category_map(labels, truth).items()}
    results = []
    for image in truth.images:
        found = [
            Detection(
                to_class[a["category_id"]],
                "x",
                score,
                Box(a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]),
            )
            for a in truth.annotations
            if a["image_id"] == image.image_id and bool(a["iscrowd"]) == crowd
        ]
        results += results_for_image(image.image_id, found, category_map(labels, truth))
    return results


def test_ground_truth_as_detections_scores_100_and_crowds_are_ignored(coco_folder):
    labels = detection.coco_labels()
    for kind in ("yolo", "coco"):
        truth = load_ground_truth(coco_folder, kind)
        assert coco_map(truth, _perfect(truth, labels)).map == 100.0
    coco = load_ground_truth(coco_folder, "coco")
    # detections on crowd regions, even above every true one, are neither hits nor false alarms
    both = _perfect(coco, labels, 0.5) + _perfect(coco, labels, 1.0, crowd=True)
    assert coco_map(coco, both).map == 100.0
    as_objects = coco_eval.GroundTruth(
        coco.images, tuple({**a, "iscrowd": 0} for a in coco.annotations), coco.categories, "", "coco"
    )
    assert coco_map(as_objects, _perfect(coco, labels)).map < 100.0
    assert coco_map(coco, []).map == 0.0


def _yolo_folder(tmp_path, coco_folder, names, lines):
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    for name in ("000000000030.jpg", "000000000034.jpg"):
        shutil.copy(coco_folder / "images" / name, tmp_path / "images" / name)
    (tmp_path / "obj.names").write_text("\n".join(names) + "\n")
    (tmp_path / "labels" / "000000000030.txt").write_text(lines)
    return tmp_path


def test_darknet_names_and_images_without_labels(tmp_path, coco_folder):
    folder = _yolo_folder(
        tmp_path, coco_folder, ["person", "motorbike", "tvmonitor", "pottedplant"], "3 0.5 0.5 0.2 0.4\n\n"
    )
    truth = load_ground_truth(folder)
    assert truth.kind == "yolo" and len(truth.images) == 2 and len(truth.annotations) == 1
    mapping = category_map(detection.coco_labels(), truth)
    assert mapping == {0: 1, 3: 2, 71: 3, 63: 4}
    (x, y, w, h), image = truth.annotations[0]["bbox"], truth.images[0]
    assert (x + w / 2, y + h / 2, w, h) == pytest.approx(
        (image.width / 2, image.height / 2, image.width * 0.2, image.height * 0.4)
    )
    assert (
        coco_map(load_ground_truth(_yolo_folder(tmp_path / "none", coco_folder, ["cat"], ""), "yolo"), []).map
        is None
    )


@pytest.mark.parametrize("line", ["7 0.5 0.5 0.2 0.2", "0 0.5 0.5", "cat 0.5 0.5 0.2 0.2"])
def test_bad_yolo_lines_name_the_file_and_line(tmp_path, coco_folder, line):
    folder = _yolo_folder(tmp_path, coco_folder, ["person"], f"0 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(UsageError, match=r"000000000030.txt:2: expected `class cx cy w h`") as caught:
        load_ground_truth(folder)
    assert caught.value.exit_code == 2


def test_folders_without_ground_truth_are_usage_errors(tmp_path, coco_folder):
    with pytest.raises(UsageError, match="is not a folder"):
        load_ground_truth(tmp_path / "missing")
    with pytest.raises(UsageError, match="no ground truth found"):
        load_ground_truth(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(UsageError, match="no ground truth found"):
        load_ground_truth(tmp_path, "coco")
    with pytest.raises(UsageError, match="unknown ground truth"):
        load_ground_truth(coco_folder, "voc")


def test_without_pycocotools_the_error_says_what_to_install(monkeypatch, coco_folder):
    truth = load_ground_truth(coco_folder, "yolo")
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(UsageError, match=r"pip install 'edgenet\[eval\]'"):
        coco_map(truth, _perfect(truth, detection.coco_labels()))


def test_instances_files_with_missing_images_or_fields_are_usage_errors(tmp_path, coco_folder):
    data = json.loads((coco_folder / "instances.json").read_text())
    (tmp_path / "images").mkdir()
    shutil.copy(coco_folder / "images" / data["images"][0]["file_name"], tmp_path / "images")
    (tmp_path / "instances.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match=f"{len(data['images']) - 1} of the {len(data['images'])} images"):
        load_ground_truth(tmp_path)
    data["images"] = data["images"][:1]
    del data["annotations"][0]["bbox"]
    (tmp_path / "instances.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match="lacks or mangles 'bbox'"):
        load_ground_truth(tmp_path)


def spec_of(interpreter):
    """The input spec edgenet derives for an interpreter's first input."""
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return input_spec(interpreter.get_input_details()[0], interpreter._get_ops_details(), tensors)
