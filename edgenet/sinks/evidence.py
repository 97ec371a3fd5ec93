"""Evidence (`--save DIR --save-when COND`): when a condition holds, the original frame as a JPEG and its
record as a JSON sidecar, and the record names the JPEG (`saved`, edgenet.run.records).

Both files are written atomically (edgenet.sinks.atomic), the image first: a kill -9 at any instant never
leaves a partial JPEG, nor a sidecar without its image. This sink runs before the data writer, so that the
record written names the file. `--save-max-mb` is a quota on the folder's evidence (the JPEGs and sidecars
this sink writes, by their names; nothing else in the folder is touched): oldest out first, before a new one
is written, so the folder never holds more; the folder is scanned at start, so the quota spans runs.

File names sort by time: `20261125-143000.123Z_<source>_<frame>.jpg` (+ `.json`), from the record's `time`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re

from edgenet.console import warn
from edgenet.errors import DeviceError, UsageError
from edgenet.sinks import Sink
from edgenet.sinks.annotate import encode_jpeg, safe_stem
from edgenet.sinks.conditions import Trigger

EVIDENCE_NAME = re.compile(r"^(\d{8}-\d{6}\.\d{3}Z_.+)\.(jpg|json)$")
JPEG_QUALITY = 95  # evidence is for looking at, and labelling, later


def evidence_stem(record: dict) -> str:
    """`20261125-143000.123Z_cat_0` from the record's time, source and frame."""
    moment = str(record.get("time", "")).replace("-", "").replace(":", "").replace("T", "-")
    if not re.fullmatch(r"\d{8}-\d{6}\.\d{3}Z", moment):
        moment = "00000000-000000.000Z"
    return f"{moment}_{safe_stem(record.get('source', 'frame'), 40)}_{int(record.get('frame', 0))}"


class EvidenceFolder:
    """The evidence in a folder, oldest first: (stem, bytes of its JPEG and sidecar), and the total."""

    def __init__(self, folder: str):
        self.folder = folder
        self.kept: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.total = 0

    def scan(self) -> None:
        from edgenet.sinks.atomic import remove_leftovers

        remove_leftovers(self.folder)
        sizes: dict[str, int] = {}
        for name in os.listdir(self.folder):
            match = EVIDENCE_NAME.match(name)
            if match:
                with contextlib.suppress(OSError):
                    size = os.stat(os.path.join(self.folder, name)).st_size
                    sizes[match.group(1)] = sizes.get(match.group(1), 0) + size
        for stem in sorted(sizes):
            self.add(stem, sizes[stem])

    def add(self, stem: str, size: int) -> None:
        self.kept[stem] = self.kept.get(stem, 0) + size
        self.total += size

    def remove_oldest(self) -> None:
        """The sidecar first, then its image: a kill in between leaves an image alone, never a sidecar."""
        stem, size = self.kept.popitem(last=False)
        for extension in (".json", ".jpg"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.folder, stem + extension))
        self.total -= size


class EvidenceSink(Sink):
    wants_pixels = True
    keeps = True

    def __init__(self, folder: str, conditions, max_mb: float | None = None):
        try:
            os.makedirs(folder, exist_ok=True)
            self.evidence = EvidenceFolder(folder)
            self.evidence.scan()
        except OSError as exc:
            raise UsageError(f"--save {folder}: cannot use the folder: {exc.strerror or exc}") from None
        self.folder = folder
        self.trigger = Trigger(tuple(conditions))
        self.max_bytes = None if max_mb is None else int(max_mb * 1024 * 1024)
        self.saved = 0
        self.removed = 0
        self._warned_size = False

    def write(self, result) -> None:
        record = result.record
        if result.image is None or not self.trigger.reasons(record, result.key, result.done):
            return
        stem = evidence_stem(record)
        while stem in self.evidence.kept:  # the same ms, source and frame (two runs at once): a new name
            stem += "b"
        image = encode_jpeg(result.image, JPEG_QUALITY)
        record["saved"] = os.path.join(self.folder, stem + ".jpg")
        from edgenet.sinks.records import safe_text

        sidecar = safe_text(json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode()
        size = len(image) + len(sidecar)
        if self.max_bytes is not None and size > self.max_bytes:
            del record["saved"]
            if not self._warned_size:
                megabytes = size / (1024 * 1024)
                warn(f"--save-max-mb: one frame's evidence ({megabytes:.2f} MB) is over the quota; not saved")
                self._warned_size = True
            return
        self._make_room(size)
        self._save(stem, image, sidecar, record)
        self.evidence.add(stem, size)
        self.saved += 1

    def _make_room(self, size: int) -> None:
        while (
            self.max_bytes is not None and self.evidence.kept and self.evidence.total + size > self.max_bytes
        ):
            try:
                self.evidence.remove_oldest()
            except OSError as exc:
                raise DeviceError(f"cannot remove old evidence in {self.folder}: {exc.strerror}") from None
            self.removed += 1

    def _save(self, stem: str, image: bytes, sidecar: bytes, record: dict) -> None:
        from edgenet.sinks.atomic import write_atomic

        try:
            write_atomic(os.path.join(self.folder, stem + ".jpg"), image)
            write_atomic(os.path.join(self.folder, stem + ".json"), sidecar)
        except OSError as exc:
            record.pop("saved", None)
            raise DeviceError(
                f"cannot save evidence in {self.folder}: {exc.strerror or exc}; free space, set "
                "--save-max-mb, or choose another --save folder"
            ) from None
