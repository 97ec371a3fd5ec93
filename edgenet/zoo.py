"""The model catalog: name -> ModelSpec. Pull, verify, cache, mirror.

Downloads go to a temporary file in the cache folder, are checked against the catalog's sha256 (or git blob
SHA-1 where only that is known upstream) and renamed into place atomically: a bad or partial download never
replaces a good file. EDGENET_MODEL_MIRROR (a folder searched by file name, or a base URL) is tried before
the upstream URL; EDGENET_HOME (default: the user cache folder) holds the cache. A file built here by
`edgenet models build` (edgenet.builds) is valid when the local-build registry (edgenet.local_builds)
vouches for its exact bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import field
from functools import lru_cache
from pathlib import Path

from edgenet import integrity, local_builds
from edgenet.data_files import read_text
from edgenet.errors import ModelError, UsageError, one_line
from edgenet.lightclass import lightclass
from edgenet.local_builds import LocalBuild

MAX_FILE_BYTES = 256 << 20  # a file or archive of unknown size larger than this is refused
STALE_SCRATCH_S = 24 * 3600
_CHUNK = 1 << 20
StopCheck = Callable[[], bool] | None


@lightclass
class Artifact:
    """One file to fetch: where from, and how to know it is the right one."""

    file: str
    url: str | None
    sha256: str | None = None
    git_sha1: str | None = None
    size: int | None = None
    alternates: tuple[tuple[str, str | None], ...] = ()  # (url, member inside an archive or None)
    built_by: str | None = None  # the zoo name `edgenet models build` makes this file for (no upstream)

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


@lightclass
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
    recipe: str | None = None  # what scripts/build_models.py calls it, for a model built locally
    size_hint: str | None = None  # the download size in MB where the exact size is unknown ("4.3", ">4.2")
    threshold: float | None = None  # a detector's default --threshold, where its scores run lower than 0.5
    built: LocalBuild | None = field(default=None, compare=False)  # the local build the cache holds
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self, present: bool | None = None, edgetpu_present: bool | None = None) -> dict:
        record = {
            "name": self.name,
            "family": self.family,
            "input": [self.input, self.input, 3],
            "classes": self.classes,
            "quant": self.quant,
            "size": self.built.size if self.built else self.artifact.size,
            "file": self.artifact.file,
            "url": self.artifact.url,
            "edgetpu": self.edgetpu.file if self.edgetpu else None,
            "latency_only": self.latency_only,
            "notes": self.notes,
        }
        if self.recipe:
            record["build"] = f"edgenet models build {self.name}"
        if self.built:
            record["local_build"] = self.built.to_dict()
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
        built_by=entry["name"] if entry.get("build") else None,
    )


@lru_cache(maxsize=1)
def _catalog_data() -> dict:
    return json.loads(read_text("catalog.json"))


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
            recipe=entry.get("build"),
            size_hint=entry.get("size_hint"),
            threshold=entry.get("threshold"),
        )
    return specs


def default_model(task: str = "classify") -> str:
    """The model a run uses when none is named: a classifier, or for `task="detect"` a detector."""
    return _catalog_data()["default_detector" if task == "detect" else "default"]


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


def local_build(artifact: Artifact, kind: str = "models") -> LocalBuild | None:
    """The registry's entry for the cached file of `artifact` (what a local build of it must match)."""
    return local_builds.entry_for(cache_path(artifact).parent, artifact.file) if kind == "models" else None


def is_present(artifact: Artifact, kind: str = "models") -> bool:
    """In the cache with the catalog's size or its local build's (sizes only: pull checks the bytes)."""
    path = cache_path(artifact, kind)
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:
        return False
    if size is None or artifact.size in (None, size):
        return size is not None
    build = local_build(artifact, kind)
    return build is not None and build.size == size


def in_mirror_folder(artifact: Artifact) -> bool:
    mirror = mirror_location()
    return bool(mirror and "://" not in mirror and _mirror_candidates(artifact))


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


def accepted(
    path: Path, artifact: Artifact, kind: str = "models", full: bool = False
) -> tuple[str | None, LocalBuild | None]:
    """(None, None): the catalog's file; (None, build): a local build; (problem, None): neither."""
    problem = check_integrity(path, artifact, full=full, remember=path)
    build = local_build(artifact, kind) if problem else None
    return local_builds.vouch(path, build, problem)


def check_integrity(
    path: Path, artifact: Artifact, full: bool = False, remember: Path | None = None
) -> str | None:
    """None when the file is the catalog's; otherwise what differs (edgenet.integrity: every byte, every
    time; the full digest when `full`). `remember`: the file's place in the cache, where a CRC-32 record
    may be kept (never in a mirror or a download's scratch folder)."""
    return integrity.check(
        path,
        size=artifact.size,
        sha256=artifact.sha256,
        git_sha1=artifact.git_sha1,
        full=full,
        remember=remember,
    )


# -- fetching ---------------------------------------------------------------------------------------


def _install_from(
    location: str, member: str | None, artifact: Artifact, target: Path, should_stop: StopCheck
) -> Path:
    """One source into the cache: into a scratch folder beside the target, verified, renamed into place. A
    mirror archive is read where it is; nothing larger than the catalog's size (or the cap) is written."""
    from edgenet import download

    limit = artifact.size or MAX_FILE_BYTES
    import tempfile  # only when a model is fetched

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
        problem = check_integrity(fetched, artifact, full=True, remember=target)
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


def prepare_cache_folder(folder: Path, damaged: str = "") -> None:
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


@lightclass
class Pulled:
    """A file in the cache and where it came from."""

    path: Path
    origin: str  # "cache", "local build", "mirror" or "upstream"
    location: str  # the file, folder or URL it was taken from
    build: LocalBuild | None = None  # the registry entry of a local build


def pull(
    artifact: Artifact, *, force: bool = False, kind: str = "models", should_stop: StopCheck = None
) -> Path:
    """The cached path of `artifact`, intact; see `obtain`."""
    return obtain(artifact, force=force, kind=kind, should_stop=should_stop).path


def obtain(
    artifact: Artifact, *, force: bool = False, kind: str = "models", should_stop: StopCheck = None
) -> Pulled:
    """Make sure the artifact is in the cache and intact (every byte is checked on every call, against the
    catalog's checksum or its local build's: edgenet.integrity); fetch it from the mirror or
    upstream otherwise. `should_stop` (e.g. "has SIGTERM arrived?") is polled during a download: the download
    then ends within a fraction of a second with `Interrupted` (exit 130), leaving nothing behind."""
    from edgenet import download

    target = cache_path(artifact, kind)
    damaged = ""
    if not force and is_present(artifact, kind):
        problem, build = accepted(target, artifact, kind)
        if problem is None:
            return Pulled(target, "local build" if build else "cache", str(target), build)
        damaged = f"the cached {artifact.file} is damaged ({problem}) and was not used; "
    prepare_cache_folder(target.parent, damaged)
    with contextlib.suppress(OSError):
        _stamp_path(target).unlink()  # the size+mtime stamps of earlier versions: never trusted again
    in_mirror = _mirror_candidates(artifact)
    candidates = in_mirror + artifact.sources()
    if not candidates:
        raise ModelError(f"{damaged}{_how_to_get(artifact, target)}")
    failures = []
    mirror = mirror_location()
    if mirror and "://" not in mirror and not in_mirror:
        state = "does not exist" if not os.path.isdir(os.path.expanduser(mirror)) else "does not hold it"
        failures.append(f"the mirror folder {mirror} {state}")
    for location, member in candidates:
        try:
            path = _install_from(location, member, artifact, target, should_stop)
        except download.Unusable as exc:
            failures.append(f"{location}: {exc}")
            continue
        except (OSError, ValueError) as exc:  # urllib's URLError is an OSError
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            failures.append(
                f"{location}: {one_line(reason) if isinstance(reason, BaseException) else reason}"
            )
            continue
        if kind == "models":
            local_builds.forget(target.parent, artifact.file)  # the published file replaced a local build
        return Pulled(path, "mirror" if (location, member) in in_mirror else "upstream", location)
    raise ModelError(
        f"{damaged}cannot fetch {artifact.file} ({'; '.join(failures)}); the cache was left unchanged; "
        + _how_to_get(artifact, target, offline=True)
    )


def _how_to_get(artifact: Artifact, target: Path, offline: bool = False) -> str:
    if artifact.built_by:
        return local_builds.how_to_build(artifact.file, artifact.built_by)
    if offline:
        return f"without network, put it in a folder named by EDGENET_MODEL_MIRROR or copy it to {target}"
    return f"{artifact.file} has no download address; set EDGENET_MODEL_MIRROR to a folder that holds it"


def _stamp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.verified")


def verify(artifact: Artifact, kind: str = "models") -> str | None:
    """None if the cached copy is intact; otherwise a reason."""
    path = cache_path(artifact, kind)
    if not path.is_file():
        return "not pulled"
    return accepted(path, artifact, kind, full=True)[0]


# -- resolving what the user typed ------------------------------------------------------------------


@lightclass
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
    pulled = obtain(spec.artifact, should_stop=should_stop)
    return ResolvedModel(
        path=pulled.path, name=spec.name, spec=local_builds.as_built(spec, pulled.build), edgetpu=False
    )


def sample_images(should_stop: StopCheck = None) -> Path:
    """The sample photos (google-coral/test_data), pulled and verified like models."""
    for artifact in sample_artifacts():
        pull(artifact, kind="samples", should_stop=should_stop)
    return home() / "samples"
