"""The registry of models built on this machine (`edgenet models build`): what vouches for a file that no
catalog checksum can.

A file built by scripts/build_models.py has its own bytes (TensorFlow version, photos, seed), so the
catalog's published sha256 cannot vouch for it. `local-builds.json`, beside the cached models, records for
each built file its sha256 and size and where it came from (the script, its arguments, the TensorFlow
version, when). A cached file is then valid when it matches the catalog OR the registry entry for that exact
file name. Written atomically under a lock: a killed build never leaves half a registry.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, fields, replace
from pathlib import Path

from edgenet.lightclass import lightclass

REGISTRY_FILE = "local-builds.json"
_LOCK_FILE = ".local-builds.lock"
_CHUNK = 1 << 20


@lightclass
class LocalBuild:
    """One file built here, as the registry records it."""

    name: str  # the zoo name it stands for
    file: str  # its file name in the cache
    sha256: str
    size: int
    input: int
    classes: int
    weights: str  # "random" or "imagenet"
    weights_source: str  # where the weights came from, in words
    latency_only: bool
    built: str  # when (UTC, ISO 8601)
    script: str  # the build script that made it
    arguments: tuple[str, ...]  # the script's arguments
    tensorflow: str  # the TensorFlow version that converted it
    python: str  # the build environment's interpreter
    params: int | None = None

    def to_dict(self) -> dict:
        record = asdict(self)
        record["arguments"] = list(self.arguments)
        return record

    @classmethod
    def from_dict(cls, record: dict) -> LocalBuild:
        """Raises TypeError/ValueError on an entry that is not one."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["arguments"] = tuple(str(a) for a in values.get("arguments", ()))
        build = cls(**values)
        if not isinstance(build.sha256, str) or len(build.sha256) != 64 or not isinstance(build.size, int):
            raise ValueError("not a local build entry")
        return build


def as_built(spec, build: LocalBuild | None):
    """The zoo spec (zoo.ModelSpec) of what the cache holds: a local build has its own input and weights."""
    if build is None:
        return spec
    return replace(
        spec, input=build.input, classes=build.classes, latency_only=build.latency_only, built=build
    )


def registry_path(folder: Path) -> Path:
    return Path(folder) / REGISTRY_FILE


def read_registry(folder: Path) -> dict[str, LocalBuild]:
    """file name -> LocalBuild. A missing or unreadable registry vouches for nothing (and says nothing: the
    file it should vouch for is then refused with a message that says how to build it again)."""
    try:
        data = json.loads(registry_path(folder).read_text(encoding="utf-8"))
        entries = data["builds"].items()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    builds = {}
    for file, record in entries:
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            build = LocalBuild.from_dict(record)
            if build.file == file:
                builds[file] = build
    return builds


def entry_for(folder: Path, file: str) -> LocalBuild | None:
    return read_registry(folder).get(file)


def sha256_of(path: Path) -> str:
    import hashlib  # only for a local build: edgenet.integrity says why it is not imported up front

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mismatch(path: Path, build: LocalBuild) -> str | None:
    """None when `path` holds the bytes the registry recorded; otherwise what differs."""
    size = path.stat().st_size
    if size != build.size:
        return f"size {size} bytes, its local build has {build.size}"
    found = sha256_of(path)
    if found != build.sha256:
        return f"sha256 {found[:16]}..., its local build has {build.sha256[:16]}..."
    return None


def vouch(path: Path, build: LocalBuild | None, catalog_problem: str | None) -> tuple:
    """(None, build) when the registry vouches for a file the catalog does not; else (problem, None)."""
    if catalog_problem is None or build is None:
        return catalog_problem, None
    problem = mismatch(path, build)
    return (None, build) if problem is None else (problem, None)


def how_to_build(file: str, name: str) -> str:
    return (
        f"{file} is not published anywhere: build it here with `edgenet models build {name}` (TensorFlow "
        "in its own environment: make build-venv), or set EDGENET_MODEL_MIRROR to a folder that holds it"
    )


@contextlib.contextmanager
def _locked(folder: Path):
    import fcntl

    with open(Path(folder) / _LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _update(folder: Path, change) -> None:
    """Read, change and write the registry atomically (temporary file, fsync, rename) under a lock."""
    folder = Path(folder)
    with _locked(folder):
        builds = {file: build.to_dict() for file, build in read_registry(folder).items()}
        change(builds)
        payload = json.dumps({"version": 1, "builds": builds}, indent=1, sort_keys=True) + "\n"
        import tempfile  # only when the registry changes

        handle, scratch = tempfile.mkstemp(dir=folder, prefix=".local-builds-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(scratch, 0o644)
            os.replace(scratch, registry_path(folder))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
            raise


def register(folder: Path, build: LocalBuild) -> None:
    def add(builds: dict) -> None:
        builds[build.file] = build.to_dict()

    _update(folder, add)


def forget(folder: Path, file: str) -> None:
    """Drop the entry of `file` (the published file replaced it). Nothing to do when there is none."""
    if file not in read_registry(folder):
        return

    def drop(builds: dict) -> None:
        builds.pop(file, None)

    _update(folder, drop)
