"""The model catalog: name -> ModelSpec. Pull, verify, cache, mirror.

Downloads go to a temporary file in the cache folder, are checked against the catalog's sha256 (or git blob
SHA-1 where only that is known upstream) and renamed into place atomically: a bad or partial download never
replaces a good file. EDGENET_MODEL_MIRROR (a folder searched by file name, or a base URL) is tried before
the upstream URL; EDGENET_HOME (default: the user cache folder) holds the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from edgenet.errors import ModelError, UsageError, one_line

MAX_FILE_BYTES = 256 << 20  # a file or archive of unknown size larger than this is refused
STALE_SCRATCH_S = 24 * 3600
_CHUNK = 1 << 20
StopCheck = Callable[[], bool] | None


@dataclass(frozen=True)
class Artifact:
    """One file to fetch: where from, and how to know it is the right one."""

    file: str
    url: str | None
    sha256: str | None = None
    git_sha1: str | None = None
    size: int | None = None
    alternates: tuple[tuple[str, str | None], ...] = ()  # (url, member inside an archive or None)

    def sources(self) -> list[tuple[str, str | None]]:
        first = [(self.url, None)] if self.url else []
        return first + list(self.alternates)

    def to_dict(self) -> dict:
        return {
            k: v
            for k, v in (
                ("file", self.file),
                ("url", self.url),
                ("sha256", self.sha256),
                ("git_sha1", self.git_sha1),
                ("size", self.size),
            )
            if v is not None
        }


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    input: int
    classes: int
    labels: str  # "imagenet", "embedded" or "coco"
    quant: str
    artifact: Artifact
    edgetpu: Artifact | None = None
    notes: str = ""
    latency_only: bool = False
    task: str = "classify"  # or "detect" (an SSD with TFLite_Detection_PostProcess)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self, present: bool | None = None, edgetpu_present: bool | None = None) -> dict:
        record = {
            "name": self.name,
            "family": self.family,
            "input": [self.input, self.input, 3],
            "classes": self.classes,
            "quant": self.quant,
            "size": self.artifact.size,
            "file": self.artifact.file,
            "url": self.artifact.url,
            "edgetpu": self.edgetpu.file if self.edgetpu else None,
            "latency_only": self.latency_only,
            "notes": self.notes,
        }
        if present is not None:
            record["present"] = present
        if edgetpu_present is not None:
            record["edgetpu_present"] = edgetpu_present
        return record


def _artifact(entry: dict) -> Artifact:
    return Artifact(
        file=entry["file"],
        url=entry.get("url"),
        sha256=entry.get("sha256"),
        git_sha1=entry.get("git_sha1"),
        size=entry.get("size"),
        alternates=tuple((alt["url"], alt.get("member")) for alt in entry.get("alternates", ())),
    )


@lru_cache(maxsize=1)
def _catalog_data() -> dict:
    return json.loads(resources.files("edgenet").joinpath("data/catalog.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def catalog() -> dict[str, ModelSpec]:
    specs = {}
    for entry in _catalog_data()["models"]:
        specs[entry["name"]] = ModelSpec(
            name=entry["name"],
            family=entry["family"],
            input=entry["input"],
            classes=entry["classes"],
            labels=entry.get("labels", "imagenet"),
            quant=entry.get("quant", ""),
            artifact=_artifact(entry),
            edgetpu=_artifact(entry["edgetpu"]) if entry.get("edgetpu") else None,
            notes=entry.get("notes", ""),
            latency_only=bool(entry.get("latency_only")),
            task=entry.get("task", "classify"),
        )
    return specs


def default_model() -> str:
    return _catalog_data()["default"]


def sample_artifacts() -> list[Artifact]:
    return [_artifact(entry) for entry in _catalog_data()["samples"]]


def get_spec(name: str) -> ModelSpec:
    specs = catalog()
    if name not in specs:
        close = [n for n in specs if name.lower() in n.lower()] or sorted(specs)[:6]
        raise UsageError(f"unknown model {name!r}; known: {', '.join(close)} (edgenet models list shows all)")
    return specs[name]


# -- locations --------------------------------------------------------------------------------------


def home() -> Path:
    explicit = os.environ.get("EDGENET_HOME")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgenet"


def cache_path(artifact: Artifact, kind: str = "models") -> Path:
    return home() / kind / artifact.file


def is_present(artifact: Artifact, kind: str = "models") -> bool:
    path = cache_path(artifact, kind)
    try:
        return path.is_file() and (artifact.size is None or path.stat().st_size == artifact.size)
    except OSError:
        return False


@lru_cache(maxsize=8)
def _mirror_index(folder: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for root, _dirs, files in sorted(os.walk(folder)):
        for name in sorted(files):
            index.setdefault(name, os.path.join(root, name))
    return index


def mirror_location() -> str | None:
    return os.environ.get("EDGENET_MODEL_MIRROR") or None


def _mirror_candidates(artifact: Artifact) -> list[tuple[str, str | None]]:
    """(location, member) pairs in the mirror: the file itself, then any archive it comes in."""
    mirror = mirror_location()
    if not mirror:
        return []
    names = [(artifact.file, None)] + [
        (url.rsplit("/", 1)[-1], member) for url, member in artifact.alternates
    ]
    if "://" in mirror:
        return [(mirror.rstrip("/") + "/" + name, member) for name, member in names]
    index = _mirror_index(os.path.abspath(os.path.expanduser(mirror)))
    return [(index[name], member) for name, member in names if name in index]


# -- integrity --------------------------------------------------------------------------------------


def check_integrity(path: Path, artifact: Artifact) -> str | None:
    """None when the file is the catalog's; otherwise what differs. One hash, the one the catalog knows."""
    size = path.stat().st_size
    if artifact.size is not None and size != artifact.size:
        return f"size {size} bytes, expected {artifact.size}"
    if artifact.sha256:
        found, expected, what = hashlib.sha256(), artifact.sha256, "sha256"
    elif artifact.git_sha1:
        found, expected, what = hashlib.sha1(b"blob %d\0" % size), artifact.git_sha1, "git blob sha1"
    else:
        return None
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            found.update(chunk)
    if found.hexdigest() != expected:
        return f"{what} {found.hexdigest()[:16]}..., expected {expected[:16]}..."
    return None


# -- fetching ---------------------------------------------------------------------------------------


def _install_from(
    location: str, member: str | None, artifact: Artifact, target: Path, should_stop: StopCheck
) -> Path:
    """One source into the cache: into a scratch folder beside the target, verified, renamed into place. A
    mirror archive is read where it is; nothing larger than the catalog's size (or the cap) is written."""
    from edgenet import download

    limit = artifact.size or MAX_FILE_BYTES
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".pull-{os.getpid()}-") as scratch:
        scratch = Path(scratch)
        archive = Path(location)
        if "://" in location or not member:
            name = location.rsplit("/", 1)[-1]
            archive = scratch / (name if name not in ("", ".", "..") else "download")
            with open(archive, "wb") as handle:
                download.fetch(
                    location, handle, limit=MAX_FILE_BYTES if member else limit, should_stop=should_stop
                )
        fetched = archive
        if member:
            fetched = scratch / artifact.file
            with open(fetched, "wb") as handle:
                download.extract_member(archive, member, handle, limit=limit, should_stop=should_stop)
        problem = check_integrity(fetched, artifact)
        if problem:
            raise download.Unusable(f"checksum mismatch ({problem})")
        os.chmod(fetched, 0o644)
        os.replace(fetched, target)
    return target


def _remove_stale_scratch(folder: Path) -> None:
    """`.pull-PID-*` folders left by a process that was killed (SIGKILL, power cut) mid-download."""
    try:
        entries = [entry for entry in folder.iterdir() if entry.name.startswith(".pull-")]
    except OSError:
        return
    for entry in entries:
        pid = entry.name.split("-")[1]
        alive = False
        if pid.isdigit():
            try:
                os.kill(int(pid), 0)
                alive = True
            except ProcessLookupError:
                pass
            except OSError:  # another user's process: alive
                alive = True
        with contextlib.suppress(OSError):
            if not alive or time.time() - entry.stat().st_mtime > STALE_SCRATCH_S:
                shutil.rmtree(entry, ignore_errors=True)


def _prepare_folder(folder: Path, damaged: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"{damaged}cannot create the cache folder {folder}: {exc.strerror}; point EDGENET_HOME at a "
            "writable folder"
        ) from None
    if not os.access(folder, os.W_OK):
        raise ModelError(
            f"{damaged}the cache folder {folder} is not writable; point EDGENET_HOME at a writable folder"
        )
    _remove_stale_scratch(folder)


def pull(
    artifact: Artifact, *, force: bool = False, kind: str = "models", should_stop: StopCheck = None
) -> Path:
    """Make sure the artifact is in the cache and intact (its checksum is verified on every call: a bad SD
    card changes bytes without touching size or mtime); fetch it from the mirror or upstream otherwise.
    `should_stop` (e.g. "has SIGTERM arrived?") is polled during a download: the download then ends within
    a fraction of a second with `Interrupted` (exit 130), leaving nothing behind."""
    from edgenet import download

    target = cache_path(artifact, kind)
    damaged = ""
    if not force and is_present(artifact, kind):
        problem = check_integrity(target, artifact)
        if problem is None:
            return target
        damaged = f"the cached {artifact.file} is damaged ({problem}) and was not used; "
    _prepare_folder(target.parent, damaged)
    with contextlib.suppress(OSError):
        _stamp_path(target).unlink()  # the size+mtime stamps of earlier versions: never trusted again
    candidates = _mirror_candidates(artifact) + artifact.sources()
    if not candidates:
        raise ModelError(
            f"{damaged}{artifact.file} has no download address (it is built locally by "
            "scripts/build_models.py); set EDGENET_MODEL_MIRROR to a folder that holds it, "
            f"or copy it to {target}"
        )
    failures = []
    mirror = mirror_location()
    if mirror and "://" not in mirror and not _mirror_candidates(artifact):
        where = "does not exist" if not os.path.isdir(os.path.expanduser(mirror)) else "does not hold it"
        failures.append(f"the mirror folder {mirror} {where}")
    for location, member in candidates:
        try:
            return _install_from(location, member, artifact, target, should_stop)
        except download.Unusable as exc:
            failures.append(f"{location}: {exc}")
        except (OSError, ValueError) as exc:  # urllib's URLError is an OSError
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            failures.append(
                f"{location}: {one_line(reason) if isinstance(reason, BaseException) else reason}"
            )
    raise ModelError(
        f"{damaged}cannot fetch {artifact.file} ({'; '.join(failures)}); the cache was left unchanged; "
        f"without network, put the file in a folder named by EDGENET_MODEL_MIRROR or copy it to {target}"
    )


def _stamp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.verified")


def verify(artifact: Artifact, kind: str = "models") -> str | None:
    """None if the cached copy is intact; otherwise a reason."""
    path = cache_path(artifact, kind)
    if not path.is_file():
        return "not pulled"
    return check_integrity(path, artifact)


# -- resolving what the user typed ------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    name: str  # zoo name, or the file name for a path
    spec: ModelSpec | None
    edgetpu: bool  # the path is an Edge TPU compiled file


def looks_like_path(model: str) -> bool:
    return (
        model.lower().endswith(".tflite") or os.sep in model or model.startswith(".") or os.path.exists(model)
    )


def resolve(model: str | None, *, edgetpu: bool = False, should_stop: StopCheck = None) -> ResolvedModel:
    """A zoo name (pulled if needed, verified) or a path to a .tflite. `should_stop`: see `pull`."""
    model = model or default_model()
    if looks_like_path(model) and model not in catalog():
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelError(
                f"model file not found: {model}; give a zoo name (edgenet models list) or a .tflite path"
            )
        return ResolvedModel(
            path=path, name=path.name, spec=None, edgetpu=path.name.endswith("_edgetpu.tflite")
        )
    spec = get_spec(model)
    if edgetpu:
        if spec.edgetpu is None:
            raise ModelError(f"model {spec.name} has no Edge TPU compiled twin; run it on the CPU")
        path = pull(spec.edgetpu, should_stop=should_stop)
        return ResolvedModel(path=path, name=spec.name, spec=spec, edgetpu=True)
    return ResolvedModel(
        path=pull(spec.artifact, should_stop=should_stop), name=spec.name, spec=spec, edgetpu=False
    )


def sample_images(should_stop: StopCheck = None) -> Path:
    """The sample photos (google-coral/test_data), pulled and verified like models."""
    for artifact in sample_artifacts():
        pull(artifact, kind="samples", should_stop=should_stop)
    return home() / "samples"
