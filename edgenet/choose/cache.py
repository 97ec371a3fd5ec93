"""The measurement cache of `edgenet choose`: one JSON file per board and runtime under EDGENET_HOME/choose.

The file's key is what makes a latency comparable: the CPU, board and machine, the backend and its version,
the inference threads and the delegate asked for (with the Edge TPUs present, which change what `auto` runs).
Inside, one entry per model, valid while the model file (its catalog checksum) and the photos it was timed on
(names and sizes) are the same; and accuracies measured with --eval, keyed by model and labelled folder. The
file is rewritten atomically after every model, so a stopped run keeps what it measured.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = 1


def cache_key(
    host_facts: dict, backend: str, backend_version: str, threads: int, delegate: str, edgetpus: int
) -> dict:
    """What a cached latency is only valid for."""
    return {
        "format": FORMAT,
        "cpu_model": host_facts.get("cpu_model"),
        "board": host_facts.get("board"),
        "machine": host_facts.get("machine"),
        "backend": backend,
        "backend_version": backend_version,
        "threads": threads,
        "delegate": delegate,
        "edgetpus": edgetpus,
    }


def cache_path(home: Path, key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    machine = "".join(c for c in str(key.get("machine") or "host") if c.isalnum() or c in "-_") or "host"
    return home / "choose" / f"{machine}-t{key['threads']}-{key['delegate']}-{digest}.json"


def files_fingerprint(paths: list[str], root: str | None = None, with_times: bool = False) -> str:
    """A short digest of a set of files: names (relative to `root`, else base names) and sizes, and with
    `with_times` their modification times (a labelled folder can be edited in place)."""
    rows = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        name = os.path.relpath(path, root) if root else os.path.basename(path)
        rows.append(f"{name}\0{stat.st_size}" + (f"\0{stat.st_mtime_ns}" if with_times else ""))
    return hashlib.sha1("\n".join(sorted(rows)).encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass
class MeasurementCache:
    """The cache file of one key: latency entries by model, accuracy entries by model and folder."""

    path: Path
    key: dict
    latency: dict[str, dict] = field(default_factory=dict)
    accuracy: dict[str, dict] = field(default_factory=dict)
    problem: str | None = None  # why an existing file was not used (unreadable, another key)

    @classmethod
    def open(cls, home: Path, key: dict) -> MeasurementCache:
        path = cache_path(home, key)
        cache = cls(path=path, key=key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cache
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            cache.problem = f"the cache {path} could not be read ({type(exc).__name__}); measuring again"
            return cache
        if not isinstance(data, dict) or data.get("key") != key:
            cache.problem = f"the cache {path} is for another board or runtime; measuring again"
            return cache
        cache.latency = {k: v for k, v in (data.get("latency") or {}).items() if isinstance(v, dict)}
        cache.accuracy = {k: v for k, v in (data.get("accuracy") or {}).items() if isinstance(v, dict)}
        return cache

    def latency_for(self, model: str, model_sha: str | None, images: str) -> dict | None:
        entry = self.latency.get(model)
        if entry and entry.get("model_sha") == model_sha and entry.get("images") == images:
            return entry
        return None

    def accuracy_for(self, model: str, model_sha: str | None, folder: str) -> dict | None:
        entry = self.accuracy.get(f"{model}@{folder}")
        return entry if entry and entry.get("model_sha") == model_sha else None

    def put_latency(self, model: str, entry: dict) -> None:
        self.latency[model] = entry
        self.save()

    def put_accuracy(self, model: str, folder: str, entry: dict) -> None:
        self.accuracy[f"{model}@{folder}"] = entry
        self.save()

    def save(self) -> None:
        """Write the whole file to a temporary file beside it and rename it into place. A cache that cannot
        be written is not an error of the command: the figures are still shown (the caller warns)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"key": self.key, "latency": self.latency, "accuracy": self.accuracy}
        handle, scratch = tempfile.mkstemp(dir=self.path.parent, prefix=".choose-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(scratch, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
            raise
