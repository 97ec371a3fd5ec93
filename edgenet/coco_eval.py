"""Detection ground truth (a COCO instances JSON, or YOLO label files with a names file) and COCO mAP.

mAP is COCO's own evaluation (pycocotools' COCOeval, bbox: IoU 0.50:0.95, 101-point interpolation, area
range all, 100 detections per image, crowd regions ignored), from the optional extra `edgenet[eval]`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgenet.detection import Detection, is_placeholder
from edgenet.errors import UsageError, one_line

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
NAMES_FILES = ("*.names", "classes.txt", "obj.names")
GROUND_TRUTH_KINDS = ("auto", "coco", "yolo")
# Darknet's coco.names spells six COCO categories its own way
_ALIASES = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}


@dataclass(frozen=True)
class GroundTruthImage:
    image_id: int
    path: str
    width: int
    height: int


@dataclass(frozen=True)
class GroundTruth:
    """Images, their boxes as COCO annotations (bbox [x, y, w, h] in pixels), and the categories."""

    images: tuple[GroundTruthImage, ...]
    annotations: tuple[dict, ...]
    categories: tuple[tuple[int, str], ...]  # (category id, name)
    source: str  # what was read, for the report
    kind: str  # "coco" or "yolo"

    def to_coco(self) -> dict:
        return {
            "images": [{"id": i.image_id, "width": i.width, "height": i.height} for i in self.images],
            "annotations": [dict(a) for a in self.annotations],
            "categories": [{"id": cid, "name": name} for cid, name in self.categories],
        }


@dataclass(frozen=True)
class DetectionScores:
    """COCO bbox AP, in points (0-100); None where the ground truth has nothing to find."""

    map: float | None  # AP@[.50:.95]
    ap50: float | None
    ap75: float | None
    per_category: dict = field(default_factory=dict)  # name -> AP@[.50:.95]
    images: int = 0
    objects: int = 0  # ground-truth boxes, crowd regions left out
    detections: int = 0

    def to_dict(self) -> dict:
        return {
            "map": self.map,
            "ap50": self.ap50,
            "ap75": self.ap75,
            "images": self.images,
            "objects": self.objects,
            "detections": self.detections,
            "per_category": dict(self.per_category),
        }


# -- reading ground truth --------------------------------------------------------------------------------


def load_ground_truth(folder: str | os.PathLike, kind: str = "auto") -> GroundTruth:
    """`folder` holds a COCO instances JSON (its `file_name`s under images/ or beside it), or images/ and
    labels/ (YOLO `class cx cy w h`, normalised) with a names file. `auto` prefers the COCO JSON."""
    root = Path(folder)
    if kind not in GROUND_TRUTH_KINDS:
        raise UsageError(f"unknown ground truth {kind!r}; choose one of {', '.join(GROUND_TRUTH_KINDS)}")
    if not root.is_dir():
        raise UsageError(f"{folder} is not a folder; eval --task detect takes a folder of images and labels")
    instances = _find_instances(root) if kind in ("auto", "coco") else None
    if instances is not None:
        return _load_coco(instances, root)
    names = _find_names(root) if kind in ("auto", "yolo") else None
    if names is not None and (root / "labels").is_dir():
        return _load_yolo(root, names)
    wanted = {"coco": "a COCO instances JSON", "yolo": "labels/ and a names file"}.get(kind, "either")
    raise UsageError(
        f"no ground truth found in {folder}: give a folder with a COCO instances JSON (images, annotations, "
        f"categories) or with images/, labels/ (YOLO) and a .names file; looked for {wanted}"
    )


def _find_instances(root: Path) -> Path | None:
    for candidate in sorted(root.glob("*.json")) + sorted(root.glob("annotations/*.json")):
        try:
            with open(candidate, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "annotations" in data and "images" in data:
            return candidate
    return None


def _find_names(root: Path) -> Path | None:
    for pattern in NAMES_FILES:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    return None


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise UsageError(f"{path} is not a COCO instances file (it needs images, annotations and categories)")
    return data


def _load_coco(path: Path, root: Path) -> GroundTruth:
    data = _read_json(path)
    try:
        images = tuple(_coco_image(entry, path, root) for entry in data["images"])
        annotations = tuple(
            _coco_annotation(number, ann) for number, ann in enumerate(data["annotations"], 1)
        )
        categories = tuple((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"{path} is not a COCO instances file: an entry lacks or mangles {one_line(exc)}"
        ) from None
    missing = [image.path for image in images if not os.path.isfile(image.path)]
    if missing:
        raise UsageError(
            f"{len(missing)} of the {len(images)} images in {path.name} are missing (first: {missing[0]}); "
            "put them in images/ beside it, or remove them from the file"
        )
    return GroundTruth(images, annotations, categories, str(path), "coco")


def _coco_image(entry: dict, path: Path, root: Path) -> GroundTruthImage:
    name = entry["file_name"]
    candidates = (root / "images" / name, path.parent / "images" / name, root / name)
    found = next((p for p in candidates if p.is_file()), candidates[0])
    return GroundTruthImage(int(entry["id"]), str(found), int(entry["width"]), int(entry["height"]))


def _coco_annotation(number: int, ann: dict) -> dict:
    x, y, w, h = (float(v) for v in ann["bbox"])
    return {
        "id": number,  # COCOeval needs ids above 0; the file's own ids are not needed
        "image_id": int(ann["image_id"]),
        "category_id": int(ann["category_id"]),
        "bbox": [x, y, w, h],
        "area": float(ann.get("area") or w * h),
        "iscrowd": int(ann.get("iscrowd", 0)),
    }


def _load_yolo(root: Path, names_file: Path) -> GroundTruth:
    names = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    categories = tuple((index + 1, name) for index, name in enumerate(names))
    image_paths = sorted(
        p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not image_paths:
        raise UsageError(f"{root / 'images'} has no images; YOLO ground truth needs images/ beside labels/")
    images, annotations = [], []
    for image_id, image_path in enumerate(image_paths, start=1):
        width, height = image_size(image_path)
        images.append(GroundTruthImage(image_id, str(image_path), width, height))
        label_path = root / "labels" / image_path.relative_to(root / "images").with_suffix(".txt")
        for box in _yolo_boxes(label_path, len(names)):
            cls, cx, cy, w, h = box
            bbox = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    source = f"{root / 'labels'} + {names_file.name}"
    return GroundTruth(tuple(images), tuple(annotations), categories, source, "yolo")


def _yolo_boxes(path: Path, classes: int) -> list[tuple[int, float, float, float, float]]:
    """`class cx cy w h` lines; a missing file is an image without objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, values = int(fields[0]), [float(v) for v in fields[1:5]]
        except ValueError:
            values = []
        if len(values) != 4 or not 0 <= cls < classes:
            raise UsageError(
                f"{path}:{number}: expected `class cx cy w h` with class 0..{classes - 1}: {line!r}"
            )
        boxes.append((cls, *values))
    return boxes


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, from its header where it is a JPEG or PNG."""
    from edgenet.imaging import jpeg_dimensions

    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head[:2] == b"\xff\xd8":
        dims = jpeg_dimensions(head) or jpeg_dimensions(Path(path).read_bytes())
        if dims:
            return dims
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    from edgenet.imaging import read_image

    image = read_image(str(path))
    return image.shape[1], image.shape[0]


# -- model classes to ground-truth categories ----------------------------------------------------------


def _normalize(name: str) -> str:
    key = re.sub(r"[\s_\-]+", " ", name.strip().lower())
    return _ALIASES.get(key.replace(" ", ""), key)


def category_map(labels: Sequence[str] | None, ground_truth: GroundTruth) -> dict[int, int]:
    """Model class index -> ground-truth category id, by name (case, spacing and Darknet's spellings
    aside). A model without labels evaluated on a COCO JSON uses COCO's rule: class k is category k + 1."""
    if not labels:
        if ground_truth.kind != "coco":
            raise UsageError("the model has no labels to match the names file with; give --labels")
        return {cid - 1: cid for cid, _ in ground_truth.categories}
    by_name = {_normalize(name): cid for cid, name in ground_truth.categories}
    return {
        index: by_name[_normalize(label)]
        for index, label in enumerate(labels)
        if not is_placeholder(label, index) and _normalize(label) in by_name
    }


def unmatched_categories(mapping: dict[int, int], ground_truth: GroundTruth) -> list[str]:
    """Ground-truth categories with boxes that no model class maps to (they can only lower the mAP)."""
    used = {a["category_id"] for a in ground_truth.annotations}
    names = dict(ground_truth.categories)
    return sorted(names[c] for c in used - set(mapping.values()) if c in names)


def results_for_image(image_id: int, detections: Iterable[Detection], mapping: dict[int, int]) -> list[dict]:
    """Detections -> COCO result entries (bbox [x, y, w, h]); classes the ground truth lacks are dropped."""
    return [
        {
            "image_id": image_id,
            "category_id": mapping[d.index],
            "bbox": [d.box.xmin, d.box.ymin, d.box.width, d.box.height],
            "score": d.score,
        }
        for d in detections
        if d.index in mapping
    ]


# -- COCO evaluation -------------------------------------------------------------------------------------


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise UsageError(
            "COCO mAP needs pycocotools: pip install 'edgenet[eval]' (or pip install pycocotools)"
        ) from None
    return COCO, COCOeval


def coco_map(ground_truth: GroundTruth, results: Sequence[dict]) -> DetectionScores:
    """COCOeval (bbox) of `results` (see results_for_image) against the ground truth."""
    COCO, COCOeval = _pycocotools()  # noqa: N806
    objects = sum(1 for a in ground_truth.annotations if not a["iscrowd"])
    counts = {"images": len(ground_truth.images), "objects": objects, "detections": len(results)}
    if objects == 0:
        return DetectionScores(None, None, None, **counts)
    if not results:  # COCO.loadRes refuses an empty list; nothing found scores 0
        return DetectionScores(0.0, 0.0, 0.0, **counts)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = ground_truth.to_coco()
        truth.createIndex()
        found = truth.loadRes([dict(r) for r in results])
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [iou, recall, category, area, max detections]
    names = dict(ground_truth.categories)
    per_category = {}
    for k, category_id in enumerate(evaluation.params.catIds):
        values = precision[:, :, k, 0, -1]
        if (values > -1).any():
            per_category[names[category_id]] = _points(values[values > -1].mean())
    stats = evaluation.stats
    return DetectionScores(_points(stats[0]), _points(stats[1]), _points(stats[2]), per_category, **counts)


def _points(value: float) -> float | None:
    return None if value < 0 else round(float(value) * 100, 2)
