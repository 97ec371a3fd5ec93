"""Shared fixtures: the real model mirror and photos in ../shared, and a per-test model cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared"))
MIRROR = Path(os.environ.get("EDGENET_MODEL_MIRROR") or SHARED / "models")
IMAGES = SHARED / "images"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(
            f"{what} not found at {path}: tests need the shared model mirror and photos "
            "(set EDGENET_MODEL_MIRROR / EDGENET_SHARED)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def mirror() -> Path:
    return _require(MIRROR, "model mirror")


@pytest.fixture(scope="session")
def images() -> Path:
    return _require(IMAGES, "shared photos")


@pytest.fixture(scope="session")
def model_file(mirror):
    """Path of a real model in the mirror, by its file name (may be in a subfolder)."""

    def find(name: str) -> Path:
        matches = sorted(mirror.rglob(name))
        if not matches:
            pytest.fail(f"model {name} missing from the mirror {mirror}", pytrace=False)
        return matches[0]

    return find


@pytest.fixture(scope="session")
def session_home(tmp_path_factory, mirror) -> Path:
    """A model cache shared by the tests of one session (pulled once from the mirror)."""
    return tmp_path_factory.mktemp("edgenet-home")


@pytest.fixture(autouse=True)
def edgenet_env(monkeypatch, session_home, mirror):
    """Every test: the mirror stands in for the network, the cache lives in a temporary folder, and no real
    Edge TPU or sysfs of this machine leaks in unless a test points EDGENET_SYSFS_ROOT somewhere."""
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(mirror))
    monkeypatch.setenv("EDGENET_HOME", str(session_home))
    no_devices = session_home.parent / "no-devices"
    (no_devices / "sys").mkdir(parents=True, exist_ok=True)
    (no_devices / "dev").mkdir(exist_ok=True)
    monkeypatch.setenv("EDGENET_SYSFS_ROOT", str(no_devices / "sys"))
    monkeypatch.setenv("EDGENET_DEV_ROOT", str(no_devices / "dev"))
    from edgenet import zoo

    zoo._mirror_index.cache_clear()
    yield


def run_cli(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 120):
    """The real console entry point in a subprocess: exit code, stdout and stderr kept apart."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "edgenet", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        cwd=str(ROOT),
    )


@pytest.fixture
def cli():
    return run_cli


def engine_for(path, delegate: str = "auto", threads: int = 1):
    """An engine for a model file as `--delegate` would place it on a machine without an Edge TPU."""
    from edgenet.delegates import build_engine
    from edgenet.placement import Placement

    kind = "cpu" if delegate == "cpu" else "xnnpack"
    return build_engine(path, Placement(kind=kind, fallback=delegate == "auto"), threads=threads)


def run_loop(model, frames, *, live=False, stop=None, limits=None, sinks=()):
    """Frames through the one loop (edgenet.run.loop) into a list: (records, outcome)."""
    from edgenet.run.loop import Limits, Loop
    from edgenet.run.stop import StopSignals
    from edgenet.run.summary import RunSummary
    from edgenet.sinks import Sink, Sinks

    class Collect(Sink):
        def __init__(self):
            self.records = []

        def write(self, result):
            self.records.append(result.record)

    summary = RunSummary()
    collected = Collect()
    loop = Loop(
        model,
        Sinks([collected, summary, *sinks]),
        live=live,
        stop=stop if stop is not None else StopSignals(),
        limits=limits or Limits(),
    )
    outcome = loop.run(frames, summary)
    return collected.records, outcome
