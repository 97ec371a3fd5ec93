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
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from edgenet.errors import ModelError, UsageError

DOWNLOAD_TIMEOUT_S = 30
_CHUNK = 1 << 20


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


def digest(path: Path) -> tuple[str, str, int]:
    """(sha256, git blob sha1, size) of a file, in one read."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            git.update(chunk)
    return sha256.hexdigest(), git.hexdigest(), size


def check_integrity(path: Path, artifact: Artifact) -> str | None:
    """None when the file is the catalog's; otherwise what differs."""
    sha256, git_sha1, size = digest(path)
    if artifact.size is not None and size != artifact.size:
        return f"size {size} bytes, expected {artifact.size}"
    if artifact.sha256 and sha256 != artifact.sha256:
        return f"sha256 {sha256[:16]}..., expected {artifact.sha256[:16]}..."
    if not artifact.sha256 and artifact.git_sha1 and git_sha1 != artifact.git_sha1:
        return f"git blob sha1 {git_sha1[:16]}..., expected {artifact.git_sha1[:16]}..."
    return None


# -- fetching ---------------------------------------------------------------------------------------


def _fetch_to(location: str, handle) -> None:
    if "://" not in location:
        with open(location, "rb") as source:
            shutil.copyfileobj(source, handle, _CHUNK)
        return
    import urllib.request  # only on a download: http, email and ssl are slow imports for every run

    request = urllib.request.Request(location, headers={"User-Agent": "edgenet"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
        shutil.copyfileobj(response, handle, _CHUNK)


def _extract_member(archive: Path, member: str, target) -> None:
    import tarfile  # only for archived models, on a download

    try:
        with tarfile.open(archive) as tar:
            for info in tar.getmembers():
                if info.isfile() and os.path.basename(info.name) == member:
                    shutil.copyfileobj(tar.extractfile(info), target, _CHUNK)
                    return
    except tarfile.TarError as exc:
        raise ModelError(f"cannot open archive {archive.name}: {exc}") from None
    raise ModelError(f"archive {archive.name} has no member {member}")


def pull(artifact: Artifact, *, force: bool = False, kind: str = "models") -> Path:
    """Make sure the artifact is in the cache, verified. Returns its path."""
    target = cache_path(artifact, kind)
    if not force and is_present(artifact, kind):
        problem = _cached_problem(target, artifact)
        if problem is None:
            return target
        damaged = f"the cached {artifact.file} is damaged ({problem}); "
    else:
        damaged = ""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create the cache folder {target.parent}: {exc.strerror}; point EDGENET_HOME at a "
            "writable folder"
        ) from None
    if not os.access(target.parent, os.W_OK):
        raise ModelError(
            f"{damaged}the cache folder {target.parent} is not writable; point EDGENET_HOME at a writable "
            "folder"
        )
    candidates = _mirror_candidates(artifact) + artifact.sources()
    if not candidates:
        raise ModelError(
            f"{artifact.file} has no download address (it is built locally by scripts/build_models.py); "
            f"set EDGENET_MODEL_MIRROR to a folder that holds it, or copy it to {target}"
        )
    failures = []
    mirror = mirror_location()
    if mirror and "://" not in mirror and not _mirror_candidates(artifact):
        where = "does not exist" if not os.path.isdir(os.path.expanduser(mirror)) else "does not hold it"
        failures.append(f"the mirror folder {mirror} {where}")
    for location, member in candidates:
        try:
            return _install_from(location, member, artifact, target)
        except (OSError, ValueError) as exc:  # urllib's URLError is an OSError
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            failures.append(f"{location}: {reason}")
    raise ModelError(
        f"{damaged}cannot fetch {artifact.file} ({'; '.join(failures)}); without network, put the file in "
        f"a folder named by EDGENET_MODEL_MIRROR or copy it to {target}"
    )


def _stamp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.verified")


def _stamp(target: Path) -> str:
    info = target.stat()
    return f"{info.st_size} {info.st_mtime_ns}"


def _cached_problem(target: Path, artifact: Artifact) -> str | None:
    """Checksums are verified once per cached file and remembered with its size and mtime: a file changed
    since (a bad SD card, a stray write) is verified again before it is used."""
    stamp = _stamp_path(target)
    try:
        if stamp.read_text() == _stamp(target):
            return None
    except OSError:
        pass
    problem = check_integrity(target, artifact)
    if problem is None:
        with contextlib.suppress(OSError):
            stamp.write_text(_stamp(target))
    return problem


def _install_from(location: str, member: str | None, artifact: Artifact, target: Path) -> Path:
    folder = target.parent
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pull-") as scratch:
        scratch = Path(scratch)
        fetched = scratch / (location.rsplit("/", 1)[-1] or "download")
        with open(fetched, "wb") as handle:
            _fetch_to(location, handle)
        if member:
            extracted = scratch / artifact.file
            with open(extracted, "wb") as handle:
                _extract_member(fetched, member, handle)
            fetched = extracted
        problem = check_integrity(fetched, artifact)
        if problem:
            raise ModelError(
                f"checksum mismatch for {artifact.file} from {location}: {problem}; the cache was left "
                "unchanged; remove the bad copy or fix the mirror"
            )
        os.chmod(fetched, 0o644)
        os.replace(fetched, target)
    with contextlib.suppress(OSError):
        _stamp_path(target).write_text(_stamp(target))
    return target


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


def resolve(model: str | None, *, edgetpu: bool = False) -> ResolvedModel:
    """A zoo name (pulled if needed) or a path to a .tflite."""
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
        return ResolvedModel(path=pull(spec.edgetpu), name=spec.name, spec=spec, edgetpu=True)
    return ResolvedModel(path=pull(spec.artifact), name=spec.name, spec=spec, edgetpu=False)


def sample_images() -> Path:
    """The sample photos (google-coral/test_data), pulled and verified like models."""
    for artifact in sample_artifacts():
        pull(artifact, kind="samples")
    return home() / "samples"
