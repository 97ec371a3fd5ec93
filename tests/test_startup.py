"""Start-up (issue 16): what a plain `edgenet classify ONE.jpg` must not import, the top-level help, and
lightclass, the dataclass without generated code that the start-up path is built on. The time and memory
ratios themselves are measured by scripts/startup.py (ratios in one run, not timed asserts here)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from edgenet.cli import COMMANDS, GROUPS
from edgenet.lightclass import lightclass


def imported_by(*args: str, env=None) -> set[str]:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edgenet", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stderr.splitlines()
    return {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}


def test_a_plain_classify_imports_only_what_it_uses(images):
    args = ("classify", str(images / "cat.bmp"), "-m", "v1-0.25-128", "-f", "jsonl", "-q")
    imported_by(*args)  # pulls the model: the run after it is the cron run
    imported = imported_by(*args)
    assert "edgenet.cli.classify" in imported and "edgenet.run.loop" in imported  # it did run
    others = {module for module, _function, _extra in COMMANDS.values()} - {"edgenet.cli.classify"}
    unused = {
        *others,  # only the command asked for is imported and built
        "edgenet.tasks.detection",  # the other task, regions, --save's conditions
        "edgenet.tasks.regions",
        "edgenet.sinks.conditions",
        "edgenet.sinks.annotate",
        "rich",  # tables and live views only on a terminal
        "typer.rich_utils",
        "pydantic",  # Typer >= 0.29 (pinned below it)
        "importlib.metadata",  # versions come from the runtime's own __version__
        "_hashlib",  # OpenSSL: the cached model's CRC-32 record is checked instead (edgenet.integrity)
        "tempfile",
    }
    assert not unused & imported, sorted(unused & imported)


def test_the_top_level_help_is_plain_and_lists_every_command():
    command = [sys.executable, "-m", "edgenet", "--help"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("Usage: edgenet")
    listed = {line.split()[0] for line in run.stdout.split("Commands:")[1].splitlines() if line.strip()}
    hidden = {name for name, (_m, _f, extra) in COMMANDS.items() if extra.get("hidden")}
    assert listed == set(COMMANDS) - hidden | set(GROUPS)
    assert "╭" not in run.stdout  # click's layout, not rich panels
    bare = subprocess.run([sys.executable, "-m", "edgenet"], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 0 and bare.stdout == run.stdout  # a bare `edgenet` shows the same help


def test_a_commands_own_help_keeps_its_panels():
    command = [sys.executable, "-m", "edgenet", "models", "pull", "--help"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "╭" in run.stdout and "Usage: edgenet models pull" in run.stdout


@pytest.mark.parametrize(
    "command, usage",
    [
        (("classify",), "[PATH...]"),
        (("detect",), "[PATH...]"),
        (("eval",), "DIR"),
        (("learn",), "DIR"),
        (("models", "pull"), "[NAME...]"),
        (("models", "info"), "[NAME|FILE]"),
        (("models", "build"), "NAME"),
    ],
)
def test_positional_arguments_show_their_name_not_a_type(command, usage):
    """Issue 17: `PATH <str>` in the help said nothing; several paths are shown as `PATH...`."""
    run = subprocess.run(
        [sys.executable, "-m", "edgenet", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="100"),
    )
    assert run.returncode == 0, run.stderr
    assert "<str>" not in run.stdout and "<text>" not in run.stdout
    assert usage in run.stdout.split("Usage:")[1].splitlines()[0]


@lightclass
class Spec:
    name: str
    size: int = 0
    tags: tuple = ()
    extra: dict = dataclasses.field(default_factory=dict, compare=True)


@dataclasses.dataclass(frozen=True)
class Reference:
    name: str
    size: int = 0
    tags: tuple = ()
    extra: dict = dataclasses.field(default_factory=dict, compare=True)


@lightclass(frozen=False)
class Tally:
    seen: int = 0
    names: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.names.append("made")


@pytest.mark.parametrize("kind", [Spec, Reference])
def test_a_lightclass_behaves_as_a_frozen_dataclass(kind):
    one = kind("v2", 3, tags=("a",))
    assert (one.name, one.size, one.tags, one.extra) == ("v2", 3, ("a",), {})
    assert one == kind("v2", 3, ("a",)) and one != kind("v2", 4) and one != ("v2", 3, ("a",), {})
    assert repr(one) == f"{kind.__qualname__}(name='v2', size=3, tags=('a',), extra={{}})"
    assert kind("x").extra is not kind("x").extra  # a factory per instance
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.size = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        del one.size
    changed = dataclasses.replace(one, size=9)
    assert changed.size == 9 and changed.name == "v2" and one.size == 3
    assert [f.name for f in dataclasses.fields(one)] == ["name", "size", "tags", "extra"]
    assert dataclasses.asdict(one) == {"name": "v2", "size": 3, "tags": ("a",), "extra": {}}
    with pytest.raises(TypeError, match="missing required argument|missing 1 required"):
        kind()
    with pytest.raises(TypeError, match="unexpected keyword"):
        kind("v2", colour="red")
    with pytest.raises(TypeError, match="multiple values"):
        kind("v2", name="v3")
    with pytest.raises(TypeError, match="positional"):
        kind("v2", 1, (), {}, "one too many")
    with pytest.raises(TypeError, match="unhashable"):
        hash(one)  # a dict field, as with a dataclass


def test_a_hashable_lightclass_hashes_by_value():
    one, two = Spec("v2", 3, extra=None), Spec("v2", 3, extra=None)
    assert hash(one) == hash(two) and len({one, two}) == 1


def test_a_mutable_lightclass_runs_post_init_and_is_unhashable():
    tally = Tally()
    assert tally.names == ["made"] and tally.seen == 0
    tally.seen += 1
    assert (tally.seen, tally.names) == (1, ["made"]) and Tally() == Tally() and tally != Tally()
    with pytest.raises(TypeError):
        hash(tally)


def test_a_lightclass_refuses_fields_it_cannot_build():
    with pytest.raises(TypeError, match="plain fields only"):

        @lightclass
        class Odd:
            name: str
            derived: int = dataclasses.field(default=0, init=False)
