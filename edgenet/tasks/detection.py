"""Object detection (SSD with TFLite_Detection_PostProcess): the whole frame resized to the input, boxes in
pixels of the original frame; optionally each detection classified by a second model (the bird feeder:
find the `bird`, name the species).

Preparation resizes the whole frame (that is how SSD is trained and evaluated: no centre crop). The
decoding itself (edgenet.detection) is pure; this module puts it in the loop's four places.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgenet.choices import Resize
from edgenet.detection import (
    class_indices,
    coco_labels,
    crop_for_classifier,
    decode,
    detector_labels,
    identify_outputs,
    postprocess_outputs,
)
from edgenet.errors import ModelError

DEFAULT_THRESHOLD = 0.5  # --threshold for a detector whose catalog entry gives none
DETECTOR_LABELS_CAP = 10_000  # a detector's outputs carry no class count: a label index past this is absurd


@dataclass(frozen=True)
class Context:
    """What postprocessing needs from the capture thread: the frame's size, and (for crops) its pixels."""

    size: tuple[int, int]  # (width, height) of the frame the boxes are given in
    image: np.ndarray | None = None


class Detection:
    """The detect task (see edgenet.tasks for the four methods the loop calls)."""

    name = "detect"

    def __init__(
        self,
        engine,
        labels: list[str] | None,
        *,
        threshold: float = 0.5,
        classes: frozenset[int] | None = None,
        max_detections: int | None = None,
        crops=None,
        crop_classes: frozenset[int] | None = None,
    ):
        """`crops`: a classify Model (edgenet.model) run on each detection of `crop_classes` (None: all)."""
        self.engine = engine
        self.labels = labels
        try:
            self.mapping = identify_outputs(engine.output_details, postprocess_outputs(engine.ops))
        except ModelError:
            name = engine.model_path.rsplit("/", 1)[-1]
            raise ModelError(
                f"{name} is not an SSD object detector (no boxes, classes, scores and count outputs); "
                "use edgenet classify for classifiers"
            ) from None
        self.threshold = threshold
        self.classes = classes
        self.max_detections = max_detections
        self.crops = crops
        self.crop_classes = crop_classes
        self.warnings = list(crops.warnings) if crops is not None else []  # the classifier's, said once

    def prepare(self, image: np.ndarray):
        from edgenet.imaging import prepare

        height, width = image.shape[:2]
        context = Context((width, height), image if self.crops is not None else None)
        return prepare(image, self.engine.input, Resize.stretch), context

    def infer(self, tensor: np.ndarray, context: Context) -> tuple:
        outputs = self.engine.run(tensor)
        if self.crops is None:
            return outputs, {}
        started = time.perf_counter_ns()
        found = self._decode(outputs, context)
        classified = [self._classify(detection, context) for detection in found]
        return (outputs, found, classified), {"classify": (time.perf_counter_ns() - started) / 1e6}

    def _decode(self, outputs, context: Context) -> list:
        if not self.mapping.decided:
            self.mapping = self.mapping.settled(outputs)
        return decode(
            outputs,
            self.mapping,
            context.size,
            threshold=self.threshold,
            classes_allowed=self.classes,
            max_detections=self.max_detections,
            labels=self.labels,
        )

    def _classify(self, detection, context: Context) -> dict | None:
        """The second model on the detection's crop (box + 10 %, square, inside the frame)."""
        if self.crop_classes is not None and detection.index not in self.crop_classes:
            return None
        left, top, right, bottom = crop_for_classifier(detection.box, context.size)
        crop = context.image[top:bottom, left:right]
        task = self.crops.task
        tensor, crop_context = task.prepare(crop)
        outputs, _ = task.infer(tensor, crop_context)
        return task.finish(outputs, crop_context)

    def finish(self, outputs, context: Context) -> dict:
        if self.crops is None:
            found, classified = self._decode(outputs, context), None
        else:
            _, found, classified = outputs
        detections = []
        for position, detection in enumerate(found):
            entry = detection.to_dict()
            if classified is not None and classified[position] is not None:
                entry["classification"] = classified[position]
            detections.append(entry)
        return {"detections": detections}

    def change_key(self, fields: dict):
        return frozenset(d["label"] for d in fields.get("detections") or ())

    def warm_up_tensor(self) -> np.ndarray:
        from edgenet.imaging import to_input_tensor

        spec = self.engine.input
        return to_input_tensor(np.full((spec.height, spec.width, spec.channels), 128, np.uint8), spec)


@dataclass(frozen=True)
class DetectOptions:
    """The detect task's options. `classes` and `crop_classes` are label names (or indices); `crops` is the
    classifier for each detection (edgenet.model.ModelRequest), opened with the detector."""

    task: ClassVar[str] = "detect"
    threshold: float | None = None  # None: the model's own default (the catalog's), else DEFAULT_THRESHOLD
    classes: tuple[str, ...] = ()
    max_detections: int | None = None
    crops: object | None = None  # ModelRequest of the classifier for --classify-crops
    crop_classes: tuple[str, ...] = ()
    crop_top_k: int = 3
    regions: tuple = ()  # edgenet.tasks.regions.NamedRegion: keep the detections whose centre is inside

    def labels(self, resolved, labels_file: str | None, engine, warnings: list) -> tuple[list | None, str]:
        """--labels, labels embedded in the file, the catalog's COCO labels; lined up so that index k is
        the model's class k (a leading `???` or `background` line is dropped)."""
        from edgenet.labels import embedded_labels, read_labels

        dropped: list[str] = []
        if labels_file:
            labels, source = read_labels(labels_file, DETECTOR_LABELS_CAP, dropped), str(labels_file)
        else:
            labels, source = (
                embedded_labels(resolved.path, DETECTOR_LABELS_CAP, dropped, warnings),
                "embedded",
            )
        if dropped:
            shown = ", ".join(dropped[:3]) + (", ..." if len(dropped) > 3 else "")
            warnings.append(
                f"the labels ({source}) go past {DETECTOR_LABELS_CAP} classes ({shown}): left out"
            )
        if labels:
            return detector_labels(labels), source
        spec = resolved.spec
        if spec is not None and spec.labels == "coco":
            return list(coco_labels()), "coco"
        warnings.append("no labels for this detector: detections show their class index (give --labels)")
        return None, "none"

    def build(self, engine, labels, opener=None):
        """`opener`: edgenet.model.open_model, handed in (tasks sit below the model layer)."""
        crops = None
        if self.crops is not None:
            from edgenet.errors import ModelError
            from edgenet.tasks.classification import ClassifyOptions

            try:
                crops = opener(self.crops, ClassifyOptions(resize=Resize.stretch, top_k=self.crop_top_k))
            except ModelError as exc:
                if "object detector" not in str(exc):
                    raise
                raise ModelError(
                    f"--classify-crops {self.crops.model}: a detector cannot name the crops; give an image "
                    "classifier (edgenet models list shows them)"
                ) from None
        task = Detection(
            engine,
            labels,
            threshold=DEFAULT_THRESHOLD if self.threshold is None else self.threshold,
            classes=class_indices(self.classes, labels) if self.classes else None,
            max_detections=self.max_detections,
            crops=crops,
            crop_classes=class_indices(self.crop_classes, labels, "--crop-classes")
            if self.crop_classes
            else None,
        )
        if self.regions:
            from edgenet.tasks.regions import Regions

            return Regions(task, self.regions)
        return task
