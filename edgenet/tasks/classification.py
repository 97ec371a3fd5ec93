"""Image classification: a frame to the classifier's input, the output row to top-k probabilities.

Scores users see are probabilities: dequantized, and softmaxed when the graph ends in logits rather than a
SOFTMAX. Ties go to the lower class index; classes scoring exactly 0 are never listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgenet.choices import Resize
from edgenet.errors import ModelError
from edgenet.lightclass import lightclass

# Ops that only reshape or change the number format between the last real op and the output.
_PASS_THROUGH_OPS = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE"}
_PROBABILITY_OPS = {"SOFTMAX", "LOGISTIC"}


@lightclass
class OutputSpec:
    classes: int
    dtype: str
    scale: float
    zero_point: int
    probabilities: bool  # False: the graph ends in logits and scores need a softmax


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float

    def to_dict(self) -> dict:  # per record, k times: a literal, far cheaper than dataclasses.asdict
        return {"index": self.index, "label": self.label, "score": self.score}


def ends_in_probabilities(ops: list, output_index: int) -> bool:
    """Walk back from the output through reshapes and (de)quantization to the op that made it."""
    producers = {}
    for op in ops:
        for tensor in op["outputs"]:
            producers.setdefault(int(tensor), op)
    tensor = output_index
    for _ in range(len(ops) + 1):
        op = producers.get(tensor)
        if op is None:
            return True  # unknown graph (e.g. Edge TPU custom op): trust it
        name = op["op_name"]
        if name in _PROBABILITY_OPS:
            return True
        if name not in _PASS_THROUGH_OPS:
            return name == "edgetpu-custom-op"
        tensor = int(op["inputs"][0])
    return True


def output_spec(engine) -> OutputSpec:
    """The classifier's output: one [1, classes] tensor. A detector or anything else is refused here."""
    name = engine.file.path.rsplit("/", 1)[-1]
    if engine.file.detection or len(engine.outputs) > 1:
        raise ModelError(
            f"{name} is an object detector ({len(engine.outputs)} outputs, SSD post-processing), not a "
            "classifier; use edgenet detect"
        )
    output = engine.outputs[0]
    shape = list(output.shape)
    classes = shape[-1] if shape else 0
    if len(shape) not in (1, 2) or classes < 2 or int(np.prod(shape)) != classes:
        raise ModelError(f"{name}: output shape {shape} is not a classifier's [1, classes]")
    return OutputSpec(
        classes=classes,
        dtype=output.dtype,
        scale=output.scale,
        zero_point=output.zero_point,
        probabilities=ends_in_probabilities(engine.ops, output.index) if engine.ops else True,
    )


def scores_from_output(raw: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """Dequantize; apply a softmax when the graph ends in logits. Returns float32 probabilities."""
    values = raw.reshape(-1)
    if spec.dtype in ("uint8", "int8", "int16"):
        scale = spec.scale or 1.0
        values = (values.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(scale)
    else:
        values = values.astype(np.float32, copy=False)
    if not spec.probabilities:
        shifted = np.exp(values - values.max())
        values = shifted / shifted.sum()
    return values


def top_k(scores: np.ndarray, k: int = 5, threshold: float = 0.0) -> list[tuple[int, float]]:
    """Highest scores first; ties go to the lower class index (stable sort), so results are deterministic.
    Classes below `threshold` and classes scoring 0 are left out: top-k can be shorter than k."""
    k = max(0, min(k, scores.shape[0]))
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order if scores[i] >= threshold and scores[i] > 0]


def predictions(
    raw: np.ndarray, spec: OutputSpec, labels: list[str] | None, k: int = 5, threshold: float = 0.0
) -> list[Prediction]:
    ranked = top_k(scores_from_output(raw, spec), k, threshold)
    return [
        Prediction(index=i, label=labels[i] if labels and i < len(labels) else str(i), score=round(s, 5))
        for i, s in ranked
    ]


class Classification:
    """The classify task (see edgenet.tasks for the four methods the loop calls)."""

    name = "classify"

    def __init__(
        self,
        engine,
        labels: list[str] | None,
        *,
        resize: Resize = Resize.crop,
        top_k: int = 5,
        threshold: float = 0.0,
    ):
        self.engine = engine
        self.output = output_spec(engine)
        self.labels = labels
        self.resize = Resize(resize)
        self.top_k = top_k
        self.threshold = threshold

    def prepare(self, image: np.ndarray):
        from edgenet.imaging import prepare

        return prepare(image, self.engine.input, self.resize), None

    def infer(self, tensor: np.ndarray, context) -> tuple:
        return self.engine.run(tensor), {}

    def finish(self, outputs: tuple, context) -> dict:
        top = predictions(outputs[0], self.output, self.labels, self.top_k, self.threshold)
        return {"top_k": [p.to_dict() for p in top]}

    def change_key(self, fields: dict):
        top = fields.get("top_k") or []
        return top[0]["index"] if top else None

    def warm_up_tensor(self) -> np.ndarray:
        from edgenet.imaging import to_input_tensor

        spec = self.engine.input
        return to_input_tensor(np.full((spec.height, spec.width, spec.channels), 128, np.uint8), spec)


@lightclass
class ClassifyOptions:
    """The classify task's options: `labels` finds the model's labels, `build` makes the task."""

    task: ClassVar[str] = "classify"
    resize: Resize = Resize.crop
    top_k: int = 5
    threshold: float = 0.0
    regions: tuple = ()  # edgenet.tasks.regions.NamedRegion: classify each region instead of the frame

    def labels(self, resolved, labels_file: str | None, engine, warnings: list) -> tuple[list | None, str]:
        """--labels, labels embedded in the file, the catalog's, ImageNet for 1000/1001 classes; a list of
        another length than the model's classes is said once."""
        from edgenet.labels import find_labels

        classes = output_spec(engine).classes
        spec = resolved.spec
        found = find_labels(resolved.path, classes, labels_file, spec.labels if spec else None)
        labels, source = found.labels, found.source
        warnings.extend(found.warnings)
        if labels is not None and len(labels) != classes:
            warnings.append(
                f"the labels ({source}) have {len(labels)} entries but the model has "
                f"{classes} classes: classes without a label show their index; check --labels"
            )
        return labels, source

    def build(self, engine, labels, opener=None):
        task = Classification(engine, labels, resize=self.resize, top_k=self.top_k, threshold=self.threshold)
        if self.regions:
            from edgenet.tasks.regions import Regions

            return Regions(task, self.regions)
        return task
