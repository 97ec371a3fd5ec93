"""Regions of the frame ("watch a spot"): `--roi door=0.55,0.3,0.3,0.5`, repeatable.

- classify: each region is cropped from the frame (edgenet.roi, exactly as `edgenet learn --roi` crops its
  training photos) and classified; the record carries one result per region:
  `"regions": [{"region": "door", "box": {...}, "top_k": [...]}]`.
- detect: the detector runs on the whole frame, and a region keeps the detections whose centre lies inside
  it: `"regions": [{"region": "driveway", "box": {...}, "labels": ["car"]}]`; the record's `detections` are
  those inside at least one region, each naming its `regions`.

A region's state (what debouncing and MQTT see) is its top-1 label (classify) or its labels joined by `,`
(`none` when empty) (detect). The wrapper keeps the inner task's four methods, so the loop does not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgenet.errors import UsageError
from edgenet.roi import Region, parse_region

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EMPTY = "none"


@dataclass(frozen=True)
class NamedRegion:
    name: str
    region: Region


def parse_named_regions(texts) -> tuple[NamedRegion, ...]:
    """`NAME=x,y,w,h` (repeatable) -> regions; one-line usage errors for bad names, boxes or repeats."""
    found: list[NamedRegion] = []
    for text in texts or ():
        name, sep, box = str(text).partition("=")
        if not sep or not NAME.match(name):
            raise UsageError(
                "--roi takes NAME=x,y,w,h with a NAME of letters, digits, _ or - "
                f"(e.g. door=0.55,0.3,0.3,0.5), not {text!r}"
            )
        if any(r.name == name for r in found):
            raise UsageError(f"--roi {name} is given twice; name each region once")
        found.append(NamedRegion(name, parse_region(box, f"--roi {name}")))
    return tuple(found)


def _box_dict(box: tuple[int, int, int, int]) -> dict:
    left, top, right, bottom = box
    return {"xmin": left, "ymin": top, "xmax": right, "ymax": bottom}


def region_states(fields: dict) -> dict[str, tuple[str, float | None]]:
    """A record's regions -> {name: (state, score)}: what debouncing compares (see the module docstring)."""
    states = {}
    for entry in fields.get("regions") or ():
        if "top_k" in entry:
            top = entry["top_k"]
            states[entry["region"]] = (top[0]["label"], top[0]["score"]) if top else (EMPTY, None)
        else:
            labels = entry.get("labels") or []
            states[entry["region"]] = (",".join(labels) if labels else EMPTY, entry.get("score"))
    return states


class Regions:
    """A task (classify or detect) run per region; see the module docstring."""

    def __init__(self, inner, regions: tuple[NamedRegion, ...]):
        self.inner = inner
        self.regions = regions
        self.name = inner.name
        self.engine = inner.engine
        self.labels = inner.labels
        self.warnings = getattr(inner, "warnings", [])

    def __getattr__(self, name):  # threshold, top_k, resize...: the inner task's settings
        return getattr(self.inner, name)

    def prepare(self, image: np.ndarray):
        height, width = image.shape[:2]
        boxes = [named.region.box(width, height) for named in self.regions]  # InputError: an error record
        if self.name == "detect":
            tensor, context = self.inner.prepare(image)
            return tensor, (boxes, context)
        prepared = [self.inner.prepare(image[top:bottom, left:right]) for left, top, right, bottom in boxes]
        return prepared, (boxes, None)

    def infer(self, tensor, context) -> tuple:
        if self.name == "detect":
            return self.inner.infer(tensor, context[1])
        outputs = []
        for one, one_context in tensor:
            found, _ = self.inner.infer(one, one_context)
            outputs.append(found)
        return outputs, {}

    def finish(self, outputs, context) -> dict:
        boxes, inner_context = context
        if self.name != "detect":  # a classification's context is None: nothing to keep per region
            return {
                "regions": [
                    {"region": named.name, "box": _box_dict(box), **self.inner.finish(found, None)}
                    for named, box, found in zip(self.regions, boxes, outputs, strict=True)
                ]
            }
        return self._detections_in_regions(self.inner.finish(outputs, inner_context), boxes)

    def _detections_in_regions(self, fields: dict, boxes: list) -> dict:
        regions = [
            {"region": n.name, "box": _box_dict(b), "labels": []}
            for n, b in zip(self.regions, boxes, strict=True)
        ]
        kept = []
        for detection in fields["detections"]:
            box = detection["box"]
            x, y = (box["xmin"] + box["xmax"]) / 2, (box["ymin"] + box["ymax"]) / 2
            inside = [
                region
                for region, (left, top, right, bottom) in zip(regions, boxes, strict=True)
                if left <= x < right and top <= y < bottom
            ]
            if not inside:
                continue
            kept.append({**detection, "regions": [r["region"] for r in inside]})
            for region in inside:
                if detection["label"] not in region["labels"]:
                    region["labels"].append(detection["label"])
                region["score"] = max(region.get("score", 0.0), detection["score"])
        for region in regions:
            region["labels"].sort()
        return {"detections": kept, "regions": regions}

    def change_key(self, fields: dict):
        return tuple(sorted((name, state) for name, (state, _) in region_states(fields).items()))

    def warm_up_tensor(self) -> np.ndarray:
        return self.inner.warm_up_tensor()
