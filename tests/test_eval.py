"""Accuracy: edgenet's pipeline against an independent reference implementation, and `edgenet eval`."""

import json
import shutil

import cv2
import numpy as np
import pytest

from edgenet.evaluate import class_lookup, true_class
from edgenet.labels import imagenet_labels

EVAL_MODELS = {
    "v1-0.25-128": "mobilenet_v1_0.25_128_quant.tflite",
    "v1-0.5-160": "mobilenet_v1_0.5_160_quant.tflite",
    "v1-0.75-192": "mobilenet_v1_0.75_192_quant.tflite",
    "v2-qat": "mobilenet_v2_1.0_224_quant.tflite",
    "v2": "tf2_mobilenet_v2_1.0_224_ptq.tflite",
}

# photo -> its true ImageNet class (label as in imagenet_labels.txt)
TRUTH = {
    "bird.bmp": "chickadee",
    "cat.bmp": "Egyptian cat",
    "cat_1080p.jpg": "Egyptian cat",
    "cat_720p.jpg": "Egyptian cat",
    "dragonfly.bmp": "dragonfly, darning needle, devil's darning needle, "
    "sewing needle, snake feeder, snake doctor, mosquito hawk, skeeter hawk",
    "grace_hopper.bmp": "military uniform",
    "hot_dog.jpg": "hotdog, hot dog, red hot",
    "owl.jpg": "great grey owl, great gray owl, Strix nebulosa",
    "parrot.jpg": "macaw",
    "pets.jpg": "Italian greyhound",
    "sunflower.bmp": "daisy",
}


def reference_top5(model_path, image_path):
    """The reference pipeline, written independently: RGB, shorter side to round(S/0.875) with INTER_LINEAR,
    centre crop, raw uint8 pixels into a uint8 model, stable sort of the scores."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    size = int(detail["shape"][1])
    rgb = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    short = round(size / 0.875)
    nh, nw = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    interpreter.set_tensor(
        detail["index"], resized[top : top + size, left : left + size][None].astype(np.uint8)
    )
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    scores = interpreter.get_tensor(output["index"])[0].astype(np.int32) - int(output["quantization"][1])
    return [int(i) for i in np.argsort(-scores, kind="stable")[:5] if scores[i] > 0]  # a 0 is no candidate


@pytest.mark.parametrize("name", sorted(EVAL_MODELS))
def test_classify_matches_the_reference_pipeline_image_by_image(cli, images, model_file, name):
    run = cli("classify", str(images), "-m", name, "-f", "jsonl", "-q", "-k", "5", "-t", "1")
    assert run.returncode == 0, run.stderr
    for line in run.stdout.splitlines():
        record = json.loads(line)
        ours = [p["index"] for p in record["top_k"]]
        assert ours == reference_top5(model_file(EVAL_MODELS[name]), record["source"]), record["source"]


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory, images, mirror):
    """An ImageNet-style folder: class folders named by WordNet id, and file-name prefixes."""
    labels = (mirror / "imagenet_labels.txt").read_text().splitlines()
    wnids = (mirror / "labels" / "imagenet_wnids.txt").read_text().split()
    root = tmp_path_factory.mktemp("val")
    for i, (photo, label) in enumerate(sorted(TRUTH.items())):
        wnid = wnids[labels.index(label) - 1]
        if i % 2:
            (root / wnid).mkdir(exist_ok=True)
            shutil.copy(images / photo, root / wnid / photo)
        else:
            shutil.copy(images / photo, root / f"{wnid}_{photo}")
    return root


def test_true_class_from_folder_or_prefix(imagenet_folder):
    lookup = class_lookup(list(imagenet_labels()), 1001)
    found = {p.name: true_class(str(p), str(imagenet_folder), lookup) for p in imagenet_folder.rglob("*.*")}
    assert len(found) == 11 and found["n01592084_bird.bmp"] == 20 and found["cat.bmp"] == 286
    assert found["n01818515_parrot.jpg"] == 89 and found["owl.jpg"] == 25  # owl.jpg is in n01622779/
    lookup_1000 = class_lookup(list(imagenet_labels())[1:], 1000)
    assert (
        true_class(str(imagenet_folder / "n02124075" / "cat.bmp"), str(imagenet_folder), lookup_1000) == 285
    )


def test_label_names_work_as_class_folders(tmp_path, images):
    (tmp_path / "macaw").mkdir()
    shutil.copy(images / "parrot.jpg", tmp_path / "macaw" / "a.jpg")
    lookup = class_lookup(list(imagenet_labels()), 1001)
    assert true_class(str(tmp_path / "macaw" / "a.jpg"), str(tmp_path), lookup) == 89


@pytest.mark.parametrize("name", ["v2", "v1-0.5-160"])
def test_eval_equals_the_reference_accuracy(cli, imagenet_folder, model_file, mirror, name):
    run = cli("eval", str(imagenet_folder), "-m", name, "--format", "json", "-t", "1")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report) >= {"model", "images", "errors", "top1", "top5"}
    labels = (mirror / "imagenet_labels.txt").read_text().splitlines()
    hits1 = hits5 = 0
    for path in imagenet_folder.rglob("*.*"):
        photo = next(p for p in TRUTH if path.name.endswith(p))
        ranked = reference_top5(model_file(EVAL_MODELS[name]), path)
        truth = labels.index(TRUTH[photo])
        hits1 += ranked[0] == truth
        hits5 += truth in ranked
    assert (report["model"], report["images"], report["errors"]) == (name, 11, 0)
    assert report["top1"] == pytest.approx(hits1 / 11) and report["top5"] == pytest.approx(hits5 / 11)


def test_eval_v2_knows_what_the_manifest_says(cli, imagenet_folder):
    """MANIFEST: v2 (crop) misses grace_hopper (mortarboard) and owl (ruffed grouse); both are in top 3."""
    report = json.loads(cli("eval", str(imagenet_folder), "-m", "v2", "-f", "json").stdout)
    assert report["top1"] == pytest.approx(9 / 11) and report["top5"] == 1.0


def test_eval_refuses_an_unlabelled_folder(cli, tmp_path, images):
    shutil.copy(images / "cat.bmp", tmp_path / "photo.bmp")
    run = cli("eval", str(tmp_path), "-m", "v1-0.25-128", "-f", "json")
    assert run.returncode == 2 and "names its class" in run.stderr
