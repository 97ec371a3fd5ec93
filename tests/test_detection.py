"""Detection core: finding the postprocess outputs, decoding them, labels, and the crop to classify."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from detect_reference import ReferenceDetector

from edgenet import detection
from edgenet.detection import Box, crop_for_classifier, decode, identify_outputs
from edgenet.errors import ModelError, UsageError
from edgenet.imaging import prepare, read_image
from edgenet.labels import embedded_labels, parse_labels, read_labels
from edgenet.runtime import load_backend
from edgenet.tensors import input_spec

SSD_V1 = "ssd_mobilenet_v1_1_default_1.tflite"
SSD_V1_METADATA = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_metadata.tflite"
FPNLITE = "tf2_ssd_mobilenet_v2_fpnlite_320_coco17_float32.tflite"
BIRD_CLASSIFIER = "mobilenet_v2_1.0_224_inat_bird_quant.tflite"


class Detector:
    """edgenet's detection core over a real interpreter: prepare (whole frame), invoke, identify, decode."""

    def __init__(self, path, use_graph: bool = True):
        self.interpreter = load_backend().interpreter_class(model_path=str(path))
        self.interpreter.allocate_tensors()
        self.spec = spec_of(self.interpreter)
        self.details = self.interpreter.get_output_details()
        ops = detection.postprocess_outputs(self.interpreter._get_ops_details()) if use_graph else None
        self.mapping = identify_outputs(self.details, ops)

    def outputs(self, image) -> list[np.ndarray]:
        self.interpreter.set_tensor(
            self.interpreter.get_input_details()[0]["index"], prepare(image, self.spec, "stretch")
        )
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self.details]

    def detect(self, image, **options) -> list[detection.Detection]:
        size = (image.shape[1], image.shape[0])
        return decode(self.outputs(image), self.mapping, size, labels=detection.coco_labels(), **options)


@pytest.fixture(scope="module")
def hopper(images):
    return read_image(str(images / "grace_hopper.bmp"))


def assert_same_as_reference(found, reference):
    assert len(found) == len(reference)
    for mine, (cls, score, box) in zip(found, reference, strict=True):
        assert mine.index == cls and mine.score == pytest.approx(score, abs=1e-6)
        assert (
            np.abs(np.array([mine.box.xmin, mine.box.ymin, mine.box.xmax, mine.box.ymax]) - box).max() <= 1.0
        )


# -- real models on a real photo ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "threshold"), [(SSD_V1, 0.5), (FPNLITE, 0.3), (SSD_V1_METADATA, 0.5)])
def test_grace_hopper_person_and_tie_match_an_independent_pipeline(model_file, hopper, name, threshold):
    found = Detector(model_file(name)).detect(hopper, threshold=threshold)
    labels = [d.label for d in found]
    assert "person" in labels and "tie" in labels
    person, tie = (next(d for d in found if d.label == wanted) for wanted in ("person", "tie"))
    assert person.box.width * person.box.height > 10 * tie.box.width * tie.box.height  # not swapped
    assert tie.box.xmin > person.box.xmin and tie.box.xmax < person.box.xmax
    reference = ReferenceDetector(model_file(name)).detect(hopper, threshold)
    assert_same_as_reference(found, reference)
    record = found[0].to_dict()
    assert set(record) == {"index", "label", "score", "box"} and set(record["box"]) == {
        "xmin",
        "ymin",
        "xmax",
        "ymax",
    }


def test_metadata_model_gives_the_same_boxes_and_its_labels(model_file, hopper):
    plain = Detector(model_file(SSD_V1)).detect(hopper, threshold=0.0)
    path = model_file(SSD_V1_METADATA)
    embedded = detection.detector_labels(embedded_labels(path))
    with_metadata = Detector(path)
    found = decode(with_metadata.outputs(hopper), with_metadata.mapping, (512, 600), 0.0, labels=embedded)
    assert [(d.index, d.score, d.box) for d in found] == [(d.index, d.score, d.box) for d in plain]
    assert {d.label for d in found if d.score >= 0.5} == {"person", "tie"}


def test_content_finds_what_the_graph_says_on_both_converters(model_file, hopper):
    for name in (SSD_V1, FPNLITE):
        by_graph = Detector(model_file(name))
        by_content = Detector(model_file(name), use_graph=False)
        assert by_graph.mapping.source == "graph" and by_graph.mapping.decided
        assert not by_content.mapping.decided
        settled = by_content.mapping.settled(by_content.outputs(hopper))
        assert (settled.classes, settled.scores) == (by_graph.mapping.classes, by_graph.mapping.scores)
        assert by_content.detect(hopper, threshold=0.0) == by_graph.detect(hopper, threshold=0.0)


@pytest.mark.parametrize("name", [SSD_V1, FPNLITE])
def test_every_output_order_decodes_the_same(model_file, hopper, name):
    """TF1 lists boxes, classes, scores, count; TF2 converters list them in other orders (by tensor name,
    count comes first): any order of the outputs gives the same detections, by graph and by content."""
    model = Detector(model_file(name))
    outputs = model.outputs(hopper)
    ops = detection.postprocess_outputs(model.interpreter._get_ops_details())
    expected = decode(outputs, model.mapping, (512, 600), 0.0, labels=detection.coco_labels())
    assert len(expected) == 10
    for order in itertools.permutations(range(4)):
        details = [model.details[p] for p in order]
        shuffled = [outputs[p] for p in order]
        for graph in (ops, None):
            mapping = identify_outputs(details, graph)
            assert decode(shuffled, mapping, (512, 600), 0.0, labels=detection.coco_labels()) == expected


# -- adversarial outputs, built here ------------------------------------------------------------------


def _details(order=("boxes", "classes", "scores", "count"), n=3, dtype=np.float32, names=None):
    shapes = {"boxes": [1, n, 4], "classes": [1, n], "scores": [1, n], "count": [1]}
    return [
        {
            "index": 100 + i,
            "name": (names or {}).get(kind, f"out{i}"),
            "shape": np.array(shapes[kind]),
            "dtype": dtype,
            "quantization": (0.0, 0),
        }
        for i, kind in enumerate(order)
    ]


def _outputs(boxes, classes, scores, count, order=("boxes", "classes", "scores", "count")):
    values = {
        "boxes": np.asarray(boxes, np.float32)[None],
        "classes": np.asarray(classes, np.float32)[None],
        "scores": np.asarray(scores, np.float32)[None],
        "count": np.asarray([count], np.float32),
    }
    return [values[kind] for kind in order]


BOXES = [[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4]]


def test_a_count_larger_than_the_arrays_is_clamped():
    order = ("scores", "count", "boxes", "classes")
    mapping = identify_outputs(_details(order))
    found = decode(_outputs(BOXES, [1, 2, 3], [0.9, 0.8, 0.7], 25, order), mapping, (100, 200), 0.0)
    assert [d.index for d in found] == [1, 2, 3]
    for count in (-4, float("nan"), 0):
        assert decode(_outputs(BOXES, [1, 2, 3], [0.9, 0.8, 0.7], count, order), mapping, (100, 200)) == []


def test_float_class_ids_are_rounded_not_truncated():
    mapping = identify_outputs(_details())
    found = decode(
        _outputs(BOXES, [16.9999, 0.9999, 2.0001], [0.9, 0.8, 0.7], 3),
        mapping,
        (100, 100),
        0.0,
        labels=detection.coco_labels(),
    )
    assert [(d.index, d.label) for d in found] == [(17, "dog"), (1, "bicycle"), (2, "car")]


def test_boxes_outside_the_frame_are_clipped_and_empty_ones_dropped():
    mapping = identify_outputs(_details(n=4))
    boxes = [[-0.2, -0.1, 0.5, 1.3], [1.2, 0.1, 1.5, 0.2], [0.2, 0.2, 0.2, 0.6], [0.5, 0.25, 1.0, 0.75]]
    found = decode(_outputs(boxes, [0, 1, 2, 3], [0.9, 0.8, 0.7, 0.6], 4), mapping, (640, 480), 0.0)
    assert [d.index for d in found] == [0, 3]  # 1 lies below the frame, 2 has no height
    assert found[0].box == Box(xmin=0.0, ymin=0.0, xmax=640.0, ymax=240.0)
    assert found[1].box == Box(xmin=160.0, ymin=240.0, xmax=480.0, ymax=480.0)


def test_degenerate_frames_give_no_detections():
    mapping = identify_outputs(_details())
    zeros = _outputs(np.zeros((3, 4)), [0, 0, 0], [0, 0, 0], 3)
    assert decode(zeros, mapping, (100, 100), 0.5) == []
    assert decode(zeros, mapping, (100, 100), 0.0) == []  # boxes without area
    assert not mapping.settled(zeros).decided
    nothing = _outputs(np.zeros((3, 4)), [0, 0, 0], [0, 0, 0], 0)
    assert decode(nothing, mapping, (100, 100), 0.0) == [] and not mapping.settled(nothing).decided
    broken = _outputs([[np.nan, 0, 1, 1]] + BOXES[1:], [np.nan, 1, 2], [0.9, np.nan, 0.7], 3)
    assert [d.index for d in decode(broken, mapping, (100, 100), 0.0)] == [2]


def test_classes_and_scores_are_told_apart_by_content():
    order = ("count", "scores", "boxes", "classes")
    mapping = identify_outputs(_details(order))
    assert mapping.pair == (1, 3) and not mapping.decided
    settled = mapping.settled(_outputs(BOXES, [3, 1, 3], [0.9, 0.8, 0.7], 3, order))
    assert (settled.classes, settled.scores) == (3, 1)
    # scores exactly 1.0 and class 0 everywhere would read either way; sortedness decides [1, 0, 1]
    ones = _outputs(BOXES, [1, 0, 1], [1, 1, 1], 3, order)
    assert (mapping.settled(ones).classes, mapping.settled(ones).scores) == (3, 1)
    # [1, 1, 0] against [1, 1, 1]: undecidable; the frame is decoded by the fallback and the map stays open
    tie = _outputs(BOXES, [1, 1, 0], [1, 1, 1], 3, order)
    assert not mapping.settled(tie).decided
    named = identify_outputs(
        _details(
            order,
            names={"classes": "TFLite_Detection_PostProcess:1", "scores": "TFLite_Detection_PostProcess:2"},
        )
    )
    assert [d.index for d in decode(tie, named, (10, 10), 0.5)] == [1, 1, 0]


def test_threshold_allow_list_and_maximum():
    mapping = identify_outputs(_details(n=4))
    boxes = BOXES + [[0.5, 0.5, 0.9, 0.9]]
    outputs = _outputs(boxes, [0, 15, 0, 31], [0.9, 0.8, 0.6, 0.4], 4)
    assert [d.score for d in decode(outputs, mapping, (10, 10), 0.6)] == pytest.approx([0.9, 0.8, 0.6])
    only = detection.class_indices(["Bird", "tie"], detection.coco_labels())
    assert only == {15, 31}
    assert [
        d.label for d in decode(outputs, mapping, (10, 10), 0.0, only, labels=detection.coco_labels())
    ] == ["bird", "tie"]
    assert [d.index for d in decode(outputs, mapping, (10, 10), 0.0, max_detections=2)] == [0, 15]
    assert decode(outputs, mapping, (10, 10), 0.0, max_detections=0) == []


def test_quantized_outputs_are_dequantized():
    details = _details(dtype=np.uint8)
    details[0]["quantization"] = (1 / 200, 0)
    details[2]["quantization"] = (1 / 256, 0)
    details[1]["quantization"] = (1.0, 0)
    mapping = identify_outputs(details)
    outputs = [
        np.array([[[20, 40, 100, 120]] * 3], np.uint8),
        np.array([[5, 7, 9]], np.uint8),
        np.array([[230, 128, 3]], np.uint8),
        np.array([2], np.uint8),
    ]
    found = decode(outputs, mapping, (200, 100), 0.0)
    assert [(d.index, round(d.score, 3)) for d in found] == [(5, 0.898), (7, 0.5)]
    box = found[0].box
    assert [box.xmin, box.ymin, box.xmax, box.ymax] == pytest.approx([40, 10, 120, 50], abs=1e-4)


def test_one_detection_models_and_non_detectors():
    for order in itertools.permutations(("boxes", "classes", "scores", "count")):
        mapping = identify_outputs(_details(order, n=1))
        assert mapping.boxes == order.index("boxes") and mapping.count == order.index("count")
    with pytest.raises(ModelError, match="not a TFLite_Detection_PostProcess") as caught:
        identify_outputs(
            [{"index": 1, "shape": np.array([1, 1001]), "dtype": np.uint8, "quantization": (1.0, 0)}]
        )
    assert caught.value.exit_code == 3
    assert not detection.is_detector(_details()[:3])
    assert detection.is_detector(_details(("classes", "count", "scores", "boxes"), n=4))


def test_a_classifier_is_not_a_detector_and_a_detector_is(model_file):
    for name, expected in (("mobilenet_v1_0.25_128_quant.tflite", False), (SSD_V1, True), (FPNLITE, True)):
        interpreter = load_backend().interpreter_class(model_path=str(model_file(name)))
        interpreter.allocate_tensors()
        assert detection.is_detector(interpreter.get_output_details()) is expected
        assert (detection.postprocess_outputs(interpreter._get_ops_details()) is not None) is expected


# -- labels ------------------------------------------------------------------------------------------


def test_coco_labels_in_every_shape_line_up(mirror, model_file):
    packaged = detection.coco_labels()
    assert list(packaged) == read_labels(mirror / "detection" / "coco_labels.txt")
    assert (
        len(packaged) == 90
        and packaged[0] == "person"
        and packaged[15] == "bird"
        and packaged[89] == "toothbrush"
    )
    labelmap = read_labels(mirror / "detection" / "labelmap.txt")
    embedded = embedded_labels(model_file(SSD_V1_METADATA))
    assert embedded == labelmap and detection.detector_labels(embedded) == labelmap
    unused = [k for k, label in enumerate(labelmap) if detection.is_placeholder(label, k)]
    assert len(unused) == 10 and [k for k, label in enumerate(packaged) if label == "n/a"] == unused
    real = [k for k in range(90) if k not in unused]
    assert all(labelmap[k] == packaged[k] for k in real)
    # `id  label` with gaps (Coral's old coco_labels.txt), and TF's 91-line labelmap with `???` first
    indexed = "\n".join(f"{k}  {packaged[k]}" for k in real) + "\n"
    from_indexed = detection.detector_labels(parse_labels(indexed))
    assert len(from_indexed) == 90 and all(from_indexed[k] == packaged[k] for k in real)
    assert all(detection.is_placeholder(from_indexed[k], k) for k in unused)
    leading = detection.detector_labels(parse_labels("???\n" + "\n".join(labelmap) + "\n"))
    assert leading == labelmap
    by_coco_id = detection.detector_labels(parse_labels("\n".join(f"{k + 1} {packaged[k]}" for k in real)))
    assert all(by_coco_id[k] == packaged[k] for k in real)


def test_unknown_class_names_are_a_usage_error():
    with pytest.raises(UsageError, match="no class 'birds'; did you mean bird") as caught:
        detection.class_indices(["birds"], detection.coco_labels())
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError):  # a placeholder names no class
        detection.class_indices(["n/a"], ["n/a", "cat"])
    assert detection.class_indices(["7"], None) == {7}


# -- classify what was found --------------------------------------------------------------------------


def test_crop_is_the_box_grown_and_made_square_inside_the_frame():
    box = Box(xmin=100, ymin=200, xmax=200, ymax=250)  # 100 x 50, centre (150, 225)
    left, top, right, bottom = crop_for_classifier(box, (640, 480))
    assert right - left == bottom - top == 110
    assert (left + right) / 2 == pytest.approx(150, abs=0.5) and (top + bottom) / 2 == pytest.approx(
        225, abs=0.5
    )
    # at the frame's corner the square moves inside instead of losing its shape
    assert crop_for_classifier(Box(0, 0, 40, 20), (640, 480)) == (0, 0, 44, 44)
    assert crop_for_classifier(Box(600, 460, 640, 480), (640, 480)) == (596, 436, 640, 480)
    # larger than the frame's height: clipped to the frame, no longer square
    assert crop_for_classifier(Box(100, 0, 600, 480), (640, 480)) == (75, 0, 625, 480)
    assert crop_for_classifier(Box(0, 0, 640, 480), (640, 480)) == (0, 0, 640, 480)
    # a one-pixel box still gives pixels
    left, top, right, bottom = crop_for_classifier(Box(10, 10, 10.2, 10.2), (640, 480))
    assert right - left >= 1 and bottom - top >= 1


def test_crops_are_always_inside_the_frame():
    rng = np.random.default_rng(0)
    for _ in range(500):
        width, height = (int(v) for v in rng.integers(1, 2000, 2))
        x0, x1 = sorted(rng.uniform(0, width, 2))
        y0, y1 = sorted(rng.uniform(0, height, 2))
        left, top, right, bottom = crop_for_classifier(Box(x0, y0, x1, y1), (width, height))
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        if max(x1 - x0, y1 - y0) * 1.1 < min(width, height) - 1:
            assert abs((right - left) - (bottom - top)) <= 1


def test_cascade_names_the_birds(model_file, images):
    """SSD V1 finds the bird; the crop of our geometry, classified by the iNat bird model, names it."""
    birds = images.parent / "datasets" / "birds"
    expected = {
        birds / "franklins_gull_flickr_27580496642.jpg": "Franklin's Gull",
        birds / "red_winged_blackbird_flickr_34603082862.jpg": "Red-winged Blackbird",
        images / "bird.bmp": "Black-capped Chickadee",
        images / "parrot.jpg": "Scarlet Macaw",
        images / "owl.jpg": "Burrowing Owl",
    }
    detector = Detector(model_file(SSD_V1))
    classifier_path = model_file(BIRD_CLASSIFIER)
    classifier = load_backend().interpreter_class(model_path=str(classifier_path))
    classifier.allocate_tensors()
    spec = spec_of(classifier)
    output = classifier.get_output_details()[0]
    species = embedded_labels(classifier_path)
    bird = detection.class_indices(["bird"], detection.coco_labels())
    for path, name in expected.items():
        image = read_image(str(path))
        found = detector.detect(image, threshold=0.5, classes_allowed=bird, max_detections=1)
        assert len(found) == 1, path.name
        left, top, right, bottom = crop_for_classifier(found[0].box, (image.shape[1], image.shape[0]))
        crop = image[top:bottom, left:right]
        classifier.set_tensor(classifier.get_input_details()[0]["index"], prepare(crop, spec, "stretch"))
        classifier.invoke()
        scores = classifier.get_tensor(output["index"]).reshape(-1)
        assert name in species[int(np.argmax(scores))], path.name


# -- the zoo -------------------------------------------------------------------------------------------


def test_zoo_detectors_are_detectors_and_its_classifiers_are_not(mirror):
    from edgenet import zoo

    detectors = {name for name, spec in zoo.catalog().items() if spec.task == "detect"}
    assert {"ssd-v1", "ssd-v2-fpnlite", "ssd-v2"} <= detectors
    twin = zoo.get_spec("ssd-v2").edgetpu
    assert twin.file == "ssd_mobilenet_v2_coco_quant_postprocess_edgetpu.tflite" and twin.git_sha1
    in_mirror = {p.name for p in mirror.rglob("*.tflite")}
    checked = set()
    for name, spec in zoo.catalog().items():
        if spec.artifact.file not in in_mirror:
            continue
        interpreter = load_backend().interpreter_class(model_path=str(zoo.resolve(name).path))
        interpreter.allocate_tensors()  # the postprocess outputs have no shape before
        assert detection.is_detector(interpreter.get_output_details()) is (name in detectors), name
        checked.add(name)
    assert {"ssd-v1", "ssd-v2-fpnlite", "v2"} <= checked
    assert all(zoo.get_spec(name).labels == "coco" for name in detectors)


def spec_of(interpreter):
    """The input spec edgenet derives for an interpreter's first input."""
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return input_spec(interpreter.get_input_details()[0], interpreter._get_ops_details(), tensors)
