"""Top-1 / top-5 on an ImageNet-style folder: each image's class is its parent folder or its file-name
prefix, as a WordNet id (n01440764) or a label name ("tench" or the full "tench, Tinca tinca")."""

from __future__ import annotations

import os
import re

from edgenet.errors import Interrupted, UsageError
from edgenet.labels import imagenet_wnids
from edgenet.sinks import Sink
from edgenet.sources import expand_inputs, image_frames

_WNID = re.compile(r"n\d{8}")


def class_lookup(labels: list[str] | None, classes: int) -> dict[str, int]:
    """Every name a class may go by -> class index: wnids, full labels, and each comma-separated synonym."""
    lookup: dict[str, int] = {}
    offset = 1 if classes == 1001 else 0
    if classes in (1000, 1001):
        for k, wnid in enumerate(imagenet_wnids()):
            lookup[wnid] = k + offset
    for index, label in enumerate(labels or []):
        names = [label] + [part.strip() for part in label.split(",")]
        for name in names:
            key = _normalize(name)
            if key:
                lookup.setdefault(key, index)
    return lookup


def _normalize(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def true_class(path: str, root: str, lookup: dict[str, int]) -> int | None:
    """Class of an image from its parent folder (below root), else from its file-name prefix."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    stem = os.path.splitext(os.path.basename(path))[0]
    if os.path.abspath(os.path.dirname(path)) != os.path.abspath(root):
        for candidate in (parent, _normalize(parent)):
            if candidate in lookup:
                return lookup[candidate]
    match = _WNID.match(stem)
    if match and match.group(0) in lookup:
        return lookup[match.group(0)]
    prefix = _normalize(re.split(r"[_\-.]\d|\d", stem)[0].replace("_", " "))
    if prefix in lookup:
        return lookup[prefix]
    return None


class _Ranked(Sink):
    """A sink keeping each image's ranked class indices (or None for an error record)."""

    def __init__(self):
        self.ranked: dict[str, list[int] | None] = {}

    def write(self, result) -> None:
        record = result.record
        self.ranked[record["source"]] = None if "error" in record else [p["index"] for p in record["top_k"]]


def evaluate_folder(folder: str, model, limit: int | None = None, stop=None) -> dict:
    """Top-1 and top-5 of `model` (an edgenet.model.Model with the classify task) on a labelled folder."""
    from edgenet.run.loop import Loop
    from edgenet.run.stop import StopSignals
    from edgenet.run.summary import RunSummary
    from edgenet.sinks import Sinks

    if not os.path.isdir(folder):
        raise UsageError(f"{folder} is not a folder; eval takes an ImageNet-style folder of labelled images")
    paths = expand_inputs([folder])
    if limit:
        paths = paths[:limit]
    task = model.task
    lookup = class_lookup(task.labels, task.output.classes)
    truths = {}
    unlabelled = []
    for path in paths:
        cls = true_class(path, folder, lookup)
        if cls is None:
            unlabelled.append(path)
        else:
            truths[path] = cls
    if not truths:
        raise UsageError(
            f"no image in {folder} names its class: use class folders (n01440764/x.jpg or tench/x.jpg) or "
            "file-name prefixes (n01440764_x.jpg)"
        )
    task.top_k = max(task.top_k, 5)
    ordered = [p for p in paths if p in truths]
    ranked = _Ranked()
    outcome = Loop(model, Sinks([ranked]), live=False, stop=stop if stop is not None else StopSignals()).run(
        image_frames(ordered), RunSummary()
    )
    if outcome.failure is not None:
        raise outcome.failure
    if outcome.stopped:
        raise Interrupted(
            f"interrupted ({outcome.stopped[0]}) after {len(ranked.ranked)} of {len(ordered)} images"
        )
    top1 = top5 = errors = 0
    for path in ordered:
        found = ranked.ranked.get(path)
        if found is None:
            errors += 1
            continue
        truth = truths[path]
        top1 += bool(found) and found[0] == truth
        top5 += truth in found[:5]
    scored = len(ordered) - errors
    return {
        "model": model.name,
        "images": len(ordered),
        "errors": errors,
        "unlabelled": len(unlabelled),
        "top1": top1 / scored if scored else 0.0,
        "top5": top5 / scored if scored else 0.0,
    }
