"""`edgenet eval --task detect`: COCO mAP@[.5:.95] and AP50 of a detector on a folder with ground truth (a
COCO instances JSON, or YOLO labels with a names file), with every detection the model outputs (no score
threshold, no cap), as COCO's own evaluation does (pycocotools)."""

from __future__ import annotations

from edgenet.errors import Interrupted
from edgenet.sinks import Sink


class _Found(Sink):
    """Each image's detections (or its error)."""

    def __init__(self):
        self.by_source: dict[str, list[dict] | str] = {}

    def write(self, result) -> None:
        record = result.record
        self.by_source[record["source"]] = record.get("error") or record["detections"]


def _detection(found: dict):
    from edgenet.detection import Box, Detection

    return Detection(found["index"], found["label"], found["score"], Box(**found["box"]))


def evaluate_detection(
    folder: str, model, ground_truth: str = "auto", limit: int | None = None, stop=None
) -> dict:
    """mAP of `model` (an edgenet.model.Model with the detect task) on `folder`."""
    from edgenet.coco_eval import (
        category_map,
        coco_map,
        load_ground_truth,
        results_for_image,
        unmatched_categories,
    )
    from edgenet.run.loop import Loop
    from edgenet.run.stop import StopSignals
    from edgenet.run.summary import RunSummary
    from edgenet.sinks import Sinks
    from edgenet.sources import image_frames

    truth = load_ground_truth(folder, ground_truth)
    images = truth.images[:limit] if limit else truth.images
    categories = category_map(model.labels, truth)
    task = model.task
    task.threshold, task.max_detections, task.classes = 0.0, None, None  # every detection, as COCO scores
    found = _Found()
    loop = Loop(model, Sinks([found]), live=False, stop=stop if stop is not None else StopSignals())
    outcome = loop.run(image_frames([image.path for image in images]), RunSummary())
    if outcome.failure is not None:
        raise outcome.failure
    if outcome.stopped:
        raise Interrupted(
            f"interrupted ({outcome.stopped[0]}) after {len(found.by_source)} of {len(images)} images"
        )
    results, errors = [], []
    for image in images:
        detections = found.by_source.get(image.path)
        if isinstance(detections, str) or detections is None:
            errors.append(f"{image.path}: {detections or 'no record'}")
            continue
        results += results_for_image(image.image_id, [_detection(d) for d in detections], categories)
    if limit:
        from dataclasses import replace

        kept = {image.image_id for image in images}
        truth = replace(
            truth, images=images, annotations=tuple(a for a in truth.annotations if a["image_id"] in kept)
        )
    scores = coco_map(truth, results)
    return {
        "model": model.name,
        "task": "detect",
        "ground_truth": truth.source,
        **scores.to_dict(),
        "errors": len(errors),
        "unmatched": unmatched_categories(categories, truth),
    }
