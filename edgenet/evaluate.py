"""Top-1 / top-5 on an ImageNet-style folder: each image's class is its parent folder or its file-name
prefix, as a WordNet id (n01440764) or a label name ("tench" or the full "tench, Tinca tinca")."""

from __future__ import annotations

import os
import re

from edgenet.errors import UsageError
from edgenet.labels import imagenet_wnids
from edgenet.pipeline import Classifier, classify_frames
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


def evaluate_folder(folder: str, classifier: Classifier, limit: int | None = None) -> dict:
    if not os.path.isdir(folder):
        raise UsageError(f"{folder} is not a folder; eval takes an ImageNet-style folder of labelled images")
    paths = expand_inputs([folder])
    if limit:
        paths = paths[:limit]
    lookup = class_lookup(classifier.labels, classifier.engine.output.classes)
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
    classifier.top_k = max(classifier.top_k, 5)
    top1 = top5 = errors = 0
    ordered = [p for p in paths if p in truths]
    for result in classify_frames(image_frames(ordered), classifier):
        if result.error is not None:
            errors += 1
            continue
        ranked = [p.index for p in result.top_k]
        truth = truths[result.source]
        top1 += bool(ranked) and ranked[0] == truth
        top5 += truth in ranked[:5]
    scored = len(ordered) - errors
    return {
        "model": classifier.model_name,
        "images": len(ordered),
        "errors": errors,
        "unlabelled": len(unlabelled),
        "top1": top1 / scored if scored else 0.0,
        "top5": top5 / scored if scored else 0.0,
    }
