"""`edgenet models build NAME`: make a zoo model that has no upstream file, here.

scripts/build_models.py runs in its own TensorFlow environment (EDGENET_BUILD_PYTHON, else the project's
.venv-build made by `make build-venv`), writes the file into a scratch folder in the cache, and the result is
registered as a local build (edgenet.local_builds: its sha256, the script's arguments, the TensorFlow version,
when) and renamed into the catalog's place in the cache. From then on every command takes it like a pulled
file, and refuses it if its bytes change. The script's progress lines are shown; TensorFlow's own chatter goes
to a log file that a failure names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edgenet import local_builds, zoo
from edgenet.errors import Interrupted, ModelError, UsageError
from edgenet.local_builds import LocalBuild

BUILD_PYTHON_ENV = "EDGENET_BUILD_PYTHON"
PROJECT = Path(__file__).resolve().parent.parent  # the source checkout holding scripts/ and the Makefile
SCRIPT = PROJECT / "scripts" / "build_models.py"
WEIGHTS = ("auto", "imagenet", "random")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d|\s*$)")


@dataclass(frozen=True)
class BuildRequest:
    name: str  # the zoo name
    size: int | None = None  # input resolution; None: the catalog's
    weights: str = "auto"  # auto: ImageNet weights where Keras can download them, else random
    images: str | None = None  # calibration photos; None: the shared or sample photos
    samples: int = 100
    seed: int = 0


def build_script() -> Path:
    if not SCRIPT.is_file():
        raise ModelError(
            "edgenet models build needs edgenet's source checkout (no scripts/build_models.py in "
            f"{PROJECT}): clone the project, run `make build-venv` there and use that checkout's edgenet"
        )
    return SCRIPT


def build_python() -> Path:
    """The build environment's interpreter: EDGENET_BUILD_PYTHON, else the project's .venv-build."""
    explicit = os.environ.get(BUILD_PYTHON_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ModelError(
                f"{BUILD_PYTHON_ENV}={explicit} is not an executable file; point it at the python of an "
                f"environment with TensorFlow (`make -C {PROJECT} build-venv` makes one), or unset it"
            )
        return path
    path = PROJECT / ".venv-build" / "bin" / "python"
    if not path.exists():
        raise ModelError(
            f"edgenet models build needs TensorFlow in its own environment and {path.parent.parent} does "
            f"not exist: run `make -C {PROJECT} build-venv` (or set {BUILD_PYTHON_ENV} to a Python with "
            "tensorflow)"
        )
    return path


def build_model(
    request: BuildRequest,
    *,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> LocalBuild:
    """Build `request.name`, register it as a local build and put it in the cache. Raises UsageError for a
    model that is published (pull it) or a bad option, ModelError when the build cannot run or fails,
    Interrupted when `should_stop()` turns true (nothing is registered then)."""
    spec = zoo.get_spec(request.name)
    size = _checked_request(spec, request)
    script, python = build_script(), build_python()
    target = zoo.cache_path(spec.artifact)
    zoo.prepare_cache_folder(target.parent)
    photos = calibration_photos(request.images, should_stop)
    arguments = [spec.recipe, "--size", str(size), "--weights", request.weights, "--images", str(photos)]
    arguments += ["--samples", str(request.samples), "--seed", str(request.seed)]
    log = zoo.home() / "build-logs" / f"{spec.name}.log"
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".pull-{os.getpid()}-build-") as scratch:
        record = _run_script(
            python, script, [*arguments, "--out", scratch], spec.recipe, log, should_stop, progress
        )
        built = _checked_file(record, Path(scratch), spec.name, log)
        build = LocalBuild(
            name=spec.name,
            file=spec.artifact.file,
            sha256=record["sha256"],
            size=int(record["size"]),
            input=int(record["input"]),
            classes=int(record["classes"]),
            weights=str(record["weights"]),
            weights_source=str(record.get("weights_source", record["weights"])),
            latency_only=bool(record["latency_only"]),
            built=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            script=str(script),
            arguments=tuple(arguments),
            tensorflow=str(record.get("tensorflow", "unknown")),
            python=str(python),
            params=record.get("params"),
        )
        local_builds.register(target.parent, build)  # first: the old file stays valid until it is replaced
        os.chmod(built, 0o644)
        os.replace(built, target)
    return build


def _checked_request(spec, request: BuildRequest) -> int:
    """The input size to build at, once the request is known to make sense for this model."""
    if not spec.recipe:
        buildable = ", ".join(name for name, other in zoo.catalog().items() if other.recipe)
        raise UsageError(
            f"{spec.name} is published, not built: get it with edgenet models pull {spec.name} "
            f"(models build makes {buildable})"
        )
    size = request.size or spec.input
    if size < 32 or size % 32:
        raise UsageError(f"--size must be a multiple of 32 and at least 32, not {size}")
    if request.weights not in WEIGHTS:
        raise UsageError(f"--weights is one of {', '.join(WEIGHTS)}, not {request.weights!r}")
    if request.weights == "imagenet" and spec.family == "MobileNetV4":
        raise UsageError(f"no ImageNet weights exist for {spec.name} here: use --weights random")
    if request.samples < 1:
        raise UsageError(f"--samples must be 1 or more, not {request.samples}")
    return size


def calibration_photos(explicit: str | None, should_stop: Callable[[], bool] | None = None) -> Path:
    """A folder of photos for the converter's representative dataset: --images, else the photos beside the
    model mirror (or under EDGENET_SHARED), else the sample photos (pulled like a model)."""
    if explicit:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise UsageError(f"--images {explicit}: not a folder; give a folder of .jpg or .png photos")
        return folder
    candidates = [Path(os.environ["EDGENET_SHARED"]) / "images"] if os.environ.get("EDGENET_SHARED") else []
    mirror = zoo.mirror_location()
    if mirror and "://" not in mirror:
        candidates.append(Path(mirror).expanduser().resolve().parent / "images")
    for folder in candidates:
        if folder.is_dir() and any(p.suffix.lower() in PHOTO_SUFFIXES for p in folder.iterdir()):
            return folder
    try:
        return zoo.sample_images(should_stop=should_stop)
    except ModelError as problem:
        raise ModelError(
            f"no photos to calibrate the build with (the sample photos: {problem}); give --images DIR, any "
            "folder of .jpg or .png photos"
        ) from None


def _run_script(python, script, arguments, recipe, log_path: Path, should_stop, progress) -> dict:
    """The script in its own session (a Ctrl-C reaches edgenet, which ends it), stderr into the log with
    the script's own progress lines passed on; its last stdout line is the build record."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    stdout: list[str] = []
    meaningful: list[str] = []
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"$ {python} {script} {' '.join(arguments)}\n")
        child = subprocess.Popen(
            [str(python), str(script), *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
            cwd=str(PROJECT),
            start_new_session=True,
        )

        def read_stderr() -> None:
            for line in child.stderr:
                log.write(line)
                if line.startswith(f"{recipe}:"):
                    progress(line.rstrip())
                if not _NOISE.match(line):
                    meaningful.append(line.strip())

        readers = [
            threading.Thread(target=read_stderr, daemon=True),
            threading.Thread(target=lambda: stdout.extend(child.stdout), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            while child.poll() is None:
                if should_stop and should_stop():
                    raise Interrupted(
                        f"interrupted: the build of {recipe} was stopped; nothing was registered"
                    )
                time.sleep(0.1)
        finally:
            _end(child)
            for reader in readers:
                reader.join(timeout=5)
    if child.returncode != 0:
        last = meaningful[-1] if meaningful else "no message"
        raise ModelError(
            f"the build failed (scripts/build_models.py exit {child.returncode}): {last[:300]}; "
            f"the whole log is {log_path}"
        )
    try:
        return json.loads(stdout[-1])
    except (IndexError, ValueError):
        raise ModelError(f"the build script printed no build record; the whole log is {log_path}") from None


def _end(child: subprocess.Popen) -> None:
    """Stop the script and its children if it still runs: SIGTERM, then SIGKILL."""
    if child.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _checked_file(record: dict, scratch: Path, name: str, log: Path) -> Path:
    """The file the record names, inside the scratch folder, with the bytes the record says."""
    built = Path(str(record.get("file", "")))
    if built.parent.resolve() != scratch.resolve() or not built.is_file():
        raise ModelError(f"the build of {name} wrote no model file where expected; the whole log is {log}")
    if local_builds.sha256_of(built) != record.get("sha256") or built.stat().st_size != record.get("size"):
        raise ModelError(f"the build of {name} wrote a file that differs from its record; see {log}")
    return built
