"""SSD detection outputs to detections, and the geometry around them. Pure functions over numpy arrays.

A `TFLite_Detection_PostProcess` op gives four tensors: boxes [1, N, 4] (ymin, xmin, ymax, xmax, normalised
to the input), classes [1, N], scores [1, N] and count [1]. The op always emits them in that order, but a
model's outputs list them in whatever order its converter chose (TF1 and TF2 differ), so they are found by
the graph where it is readable, by shape (boxes, count), and by content for classes against scores.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from edgenet.data_files import read_text
from edgenet.errors import ModelError, UsageError

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
CROP_GROWTH = 0.10  # a detection's box is grown by 10 % before it is classified
PLACEHOLDER_LABELS = frozenset({"???", "n/a", "background", "__background__", "unused", ""})
_WHOLE_TOLERANCE = 1e-3  # class ids come out as floats: 16.9999 is class 17
_SCORE_TOLERANCE = 1e-4
_TF1_NAMES = {f"{POSTPROCESS_OP}:1": "classes", f"{POSTPROCESS_OP}:2": "scores"}


@dataclass(frozen=True)
class Box:
    """A box in pixels of the original frame; x to the right, y down, max edges exclusive."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    def to_dict(self) -> dict:
        return {
            "xmin": round(self.xmin, 1),
            "ymin": round(self.ymin, 1),
            "xmax": round(self.xmax, 1),
            "ymax": round(self.ymax, 1),
        }


@dataclass(frozen=True)
class Detection:
    index: int  # the model's class index k (COCO category id k + 1 for COCO detectors)
    label: str
    score: float
    box: Box

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "label": self.label,
            "score": round(self.score, 5),
            "box": self.box.to_dict(),
        }


@dataclass(frozen=True)
class OutputMap:
    """Where each postprocess result is among a model's outputs (positions in get_output_details order).

    `classes` and `scores` are None while the two [1, N] outputs (`pair`) are told apart per frame by content;
    `settled()` fixes them once a frame's content decides."""

    boxes: int
    count: int
    pair: tuple[int, int]
    capacity: int  # N, the most detections the model can give
    classes: int | None = None
    scores: int | None = None
    dequantize: tuple[tuple[float, int] | None, ...] = ()  # per output: (scale, zero point) of an int tensor
    fallback_classes: int | None = None  # for frames whose content cannot decide (all 0/1): a name hint
    source: str = "content"  # "graph" (the op's own output order) or "content"

    @property
    def decided(self) -> bool:
        return self.classes is not None

    def settled(self, outputs: Sequence[np.ndarray]) -> OutputMap:
        """This map with classes and scores fixed, if this frame's content tells them apart."""
        if self.decided:
            return self
        first_is_classes = _pair_by_content(outputs, self)
        if first_is_classes is None:
            return self
        classes, scores = self.pair if first_is_classes else self.pair[::-1]
        return replace(self, classes=classes, scores=scores)


def postprocess_outputs(ops_details: Sequence[dict]) -> tuple[int, ...] | None:
    """The tensor indices the postprocess op writes, in its own order (boxes, classes, scores, count), from
    an interpreter's op list (`_get_ops_details()`); None when the graph has no such op."""
    for op in ops_details:
        if op.get("op_name") == POSTPROCESS_OP and len(op.get("outputs", ())) == 4:
            return tuple(int(t) for t in op["outputs"])
    return None


def is_detector(output_details: Sequence[dict]) -> bool:
    """Four outputs shaped like boxes, classes, scores and count: a detection model."""
    try:
        _by_shape(output_details)
    except ModelError:
        return False
    return True


def identify_outputs(output_details: Sequence[dict], op_outputs: Sequence[int] | None = None) -> OutputMap:
    """Find boxes and count by shape; classes and scores from the graph (`op_outputs`, see
    postprocess_outputs) when given, else from the content of each frame (OutputMap.settled).
    Raises ModelError when the outputs are not a TFLite_Detection_PostProcess result."""
    boxes, count, pair, capacity = _by_shape(output_details)
    dequantize = tuple(_quantization(d) for d in output_details)
    mapping = OutputMap(boxes=boxes, count=count, pair=pair, capacity=capacity, dequantize=dequantize)
    indices = [int(d["index"]) for d in output_details]
    if op_outputs is not None and len(op_outputs) == 4 and all(int(t) in indices for t in op_outputs):
        position = [indices.index(int(t)) for t in op_outputs]
        if position[0] == boxes and position[3] == count and set(position[1:3]) == set(pair):
            return replace(mapping, classes=position[1], scores=position[2], source="graph")
    names = [_TF1_NAMES.get(str(output_details[p].get("name", ""))) for p in pair]
    if names == ["classes", "scores"]:
        return replace(mapping, fallback_classes=pair[0])
    if names == ["scores", "classes"]:
        return replace(mapping, fallback_classes=pair[1])
    return mapping


def _by_shape(output_details: Sequence[dict]) -> tuple[int, int, tuple[int, int], int]:
    shapes = [tuple(int(x) for x in d["shape"]) for d in output_details]
    described = ", ".join(str(list(s)) for s in shapes)
    problem = ModelError(
        f"outputs {described} are not a TFLite_Detection_PostProcess result (boxes [1, N, 4], classes "
        "[1, N], scores [1, N], count [1]); edgenet detect runs SSD-style detectors"
    )
    if len(shapes) != 4:
        raise problem
    sizes = [int(np.prod(s)) if s else 1 for s in shapes]
    found = []
    for boxes in range(4):
        if len(shapes[boxes]) < 2 or shapes[boxes][-1] != 4:
            continue
        for count in range(4):
            rest = [p for p in range(4) if p not in (boxes, count)]
            capacity = sizes[rest[0]]
            if (
                count != boxes
                and sizes[count] == 1
                and sizes[rest[1]] == capacity
                and sizes[boxes] == 4 * capacity
                and shapes[rest[0]][-1:] == (capacity,)
                and shapes[rest[1]][-1:] == (capacity,)
            ):
                found.append((boxes, count, (rest[0], rest[1]), capacity))
    if len(found) > 1:  # N == 1: three one-element tensors; count is the one shaped unlike the pair
        found = [f for f in found if shapes[f[1]] != shapes[f[2][0]] and shapes[f[2][0]] == shapes[f[2][1]]]
    if len(found) != 1:
        raise problem
    return found[0]


def _quantization(detail: dict) -> tuple[float, int] | None:
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return None
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return (float(scale), int(zero_point)) if scale else None


def _as_float(outputs: Sequence[np.ndarray], mapping: OutputMap, position: int) -> np.ndarray:
    values = np.asarray(outputs[position]).reshape(-1)
    quant = mapping.dequantize[position] if position < len(mapping.dequantize) else None
    if quant is not None:
        scale, zero_point = quant
        return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return values.astype(np.float32, copy=False)


def detection_count(outputs: Sequence[np.ndarray], mapping: OutputMap) -> int:
    """The count the model reports, clamped to what its arrays hold (some report more); 0 if it is not a
    number."""
    reported = float(_as_float(outputs, mapping, mapping.count)[0])
    if not np.isfinite(reported):
        return 0
    return int(min(max(round(reported), 0), mapping.capacity))


def _could_be_classes(values: np.ndarray) -> bool:
    return bool(
        np.all(np.isfinite(values))
        and np.all(values > -_WHOLE_TOLERANCE)
        and np.all(np.abs(values - np.rint(values)) <= _WHOLE_TOLERANCE)
    )


def _could_be_scores(values: np.ndarray) -> bool:
    return bool(np.all(values >= -_SCORE_TOLERANCE) and np.all(values <= 1 + _SCORE_TOLERANCE))


def _descending(values: np.ndarray) -> bool:
    return bool(np.all(np.diff(values) <= _SCORE_TOLERANCE))


def _pair_by_content(outputs: Sequence[np.ndarray], mapping: OutputMap) -> bool | None:
    """True: the pair's first output is the classes; False: the second is; None: this frame cannot tell
    (no detections, or every value 0 or 1 in both)."""
    n = detection_count(outputs, mapping)
    if n == 0:
        return None
    first, second = (_as_float(outputs, mapping, p)[:n] for p in mapping.pair)
    first_classes = _could_be_classes(first) and _could_be_scores(second)
    second_classes = _could_be_classes(second) and _could_be_scores(first)
    if first_classes != second_classes:
        return first_classes
    if first_classes and _descending(first) != _descending(second):  # scores come sorted, best first
        return _descending(second)
    return None


def _classes_and_scores(outputs: Sequence[np.ndarray], mapping: OutputMap) -> tuple[np.ndarray, np.ndarray]:
    if mapping.decided:
        classes, scores = mapping.classes, mapping.scores
    else:
        first_is_classes = _pair_by_content(outputs, mapping)
        if first_is_classes is None:
            first_is_classes = mapping.fallback_classes != mapping.pair[1]
        classes, scores = mapping.pair if first_is_classes else mapping.pair[::-1]
    return _as_float(outputs, mapping, classes), _as_float(outputs, mapping, scores)


def decode(
    outputs: Sequence[np.ndarray],
    mapping: OutputMap,
    frame_size: tuple[int, int],
    threshold: float = 0.5,
    classes_allowed: Collection[int] | None = None,
    max_detections: int | None = None,
    labels: Sequence[str] | None = None,
) -> list[Detection]:
    """A frame's detections, best first: score >= threshold, class in `classes_allowed` (None: all), at most
    `max_detections` (None: all). `outputs` are the model's output tensors in get_output_details order;
    `frame_size` is (width, height) of the original frame, whose pixels the boxes are given in (clipped to
    it). Class ids are rounded, never truncated; detections that are not finite, or whose box is empty
    once clipped, are left out."""
    n = detection_count(outputs, mapping)
    if n == 0 or (max_detections is not None and max_detections <= 0):
        return []
    classes, scores = (values[:n] for values in _classes_and_scores(outputs, mapping))
    boxes = _as_float(outputs, mapping, mapping.boxes).reshape(-1, 4)[:n]
    width, height = frame_size
    pixels = np.clip(boxes, 0.0, 1.0) * np.array([height, width, height, width], np.float32)
    ids = np.rint(np.nan_to_num(classes, nan=-1.0)).astype(np.int64)
    keep = np.isfinite(scores) & (scores >= threshold) & np.all(np.isfinite(boxes), axis=1) & (ids >= 0)
    keep &= (pixels[:, 2] > pixels[:, 0]) & (pixels[:, 3] > pixels[:, 1])
    if classes_allowed is not None:
        keep &= np.isin(ids, np.fromiter(classes_allowed, np.int64))
    order = [int(i) for i in np.argsort(-scores, kind="stable") if keep[i]]
    if max_detections is not None:
        order = order[:max_detections]
    return [
        Detection(
            index=int(ids[i]),
            label=labels[ids[i]] if labels is not None and ids[i] < len(labels) else str(ids[i]),
            score=float(scores[i]),
            box=Box(
                xmin=float(pixels[i, 1]),
                ymin=float(pixels[i, 0]),
                xmax=float(pixels[i, 3]),
                ymax=float(pixels[i, 2]),
            ),
        )
        for i in order
    ]


# -- classify what was found -------------------------------------------------------------------------


def crop_for_classifier(
    box: Box, frame_size: tuple[int, int], growth: float = CROP_GROWTH
) -> tuple[int, int, int, int]:
    """The region of the frame to classify for a detection, as integer (left, top, right, bottom), right and
    bottom exclusive (frame[top:bottom, left:right]): the box grown by `growth` of its width and height
    about its centre, made square on its longer side, moved inside the frame where it fits, and clipped to
    the frame where it does not (a square larger than the frame's shorter side)."""
    width, height = frame_size
    side = max(box.width, box.height) * (1.0 + growth)
    centre_x, centre_y = (box.xmin + box.xmax) / 2, (box.ymin + box.ymax) / 2
    left, right = _span(centre_x, side, width)
    top, bottom = _span(centre_y, side, height)
    return left, top, right, bottom


def _span(centre: float, side: float, limit: int) -> tuple[int, int]:
    """[start, end) of length `side` (at least 1 px) about `centre`, inside [0, limit)."""
    length = min(max(1, round(side)), limit)
    start = min(max(0, round(centre - length / 2)), limit - length)
    return start, start + length


# -- labels --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def coco_labels() -> tuple[str, ...]:
    """The 90 COCO labels of TF detectors (package data): line k is class k = COCO category id k + 1,
    `n/a` for the ten ids COCO left unused."""
    text = read_text("coco_labels.txt")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def is_placeholder(label: str, index: int | None = None) -> bool:
    """A label that names no class: `???`, `n/a`, `background`, or a gap an indexed file left (its index)."""
    text = label.strip().lower()
    return text in PLACEHOLDER_LABELS or (index is not None and text == str(index))


def detector_labels(labels: Sequence[str] | None) -> list[str] | None:
    """Line up a label list with a detector's class index k: a list whose first entry is a placeholder
    followed by 90 or more entries (`???` then person..., as TF's example labelmap, or an id-indexed file
    starting at 1) loses that first entry, so that index 0 is the first real class."""
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) >= 91 and is_placeholder(labels[0], 0) and not is_placeholder(labels[1], 1):
        return labels[1:]
    return labels


def _normalize(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def class_indices(
    names: Collection[str], labels: Sequence[str] | None, option: str = "--classes"
) -> frozenset[int]:
    """--classes person,bird -> class indices. A name matches a label case-insensitively; a number is an
    index. Unknown names are a UsageError (naming `option`) that lists close ones."""
    lookup: dict[str, set[int]] = {}
    for index, label in enumerate(labels or ()):
        if not is_placeholder(label, index):
            lookup.setdefault(_normalize(label), set()).add(index)
    found: set[int] = set()
    for name in names:
        key = _normalize(name)
        if key.isdigit():
            if labels and int(key) >= len(labels):
                raise UsageError(f"{option}: class {key} is past the model's {len(labels)} classes")
            found.add(int(key))
        elif key in lookup:
            found |= lookup[key]
        else:
            close = sorted(k for k in lookup if key and (key in k or k in key))[:6]
            hint = (
                f"; did you mean {', '.join(close)}?" if close else "; edgenet models info MODEL lists them"
            )
            raise UsageError(f"{option}: the model has no class {name!r}{hint}")
    return frozenset(found)
