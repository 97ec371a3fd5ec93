#!/usr/bin/env python3
"""What `edgenet classify ONE.jpg` and `edgenet --help` spend their start-up on (medians of fresh processes).

    startup_profile.py [--runs 7] [--image PHOTO] [--json]

Three commands (classify, the same run with no command line, --help), two views each, over --runs fresh
processes:
1. imports (`python -X importtime`): every module's own import time summed by group (typer, pydantic,
   rich, numpy, cv2, the runtime, each edgenet module); a standard-library module is charged to the nearest
   importer that is not standard library (importlib.metadata under edgenet.runtime is edgenet.runtime's).
2. phases: a harness imports the same modules step by step (each step's wall time and the resident memory
   after it), then calls edgenet's entry point with the functions that matter wrapped in wall-clock timers:
   Typer building the click command tree (get_command), Typer's per-parameter coercion (pydantic
   TypeAdapters since Typer 0.29), opening the model (zoo.resolve with the checksum of the cached file,
   build_engine), the loop, the table. The modules classify imports lazily are imported in their own step
   first, so the phases inside main() are what is left once everything is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared"))

GROUPS = (
    ("typer", ("typer", "click", "shellingham", "annotated_doc")),
    ("pydantic (Typer 0.29+)", ("pydantic", "pydantic_core", "annotated_types", "typing_inspection")),
    ("rich", ("rich",)),
    ("markdown-it, pygments (rich help)", ("markdown_it", "mdurl", "pygments")),
    ("numpy", ("numpy",)),
    ("cv2", ("cv2",)),
    ("ai_edge_litert", ("ai_edge_litert", "tflite_runtime")),
    ("edgenet", ("edgenet", "__editable___edgenet_0_1_0_finder")),
)

HARNESS = r"""
import json, os, sys, time
started = time.perf_counter()
steps, phases = [], {}
out = os.fdopen(os.dup(1), "w")

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0

def step(label, *modules):
    began = time.perf_counter()
    for module in modules:
        try:
            __import__(module)
        except ImportError:  # e.g. typer._adapters before Typer 0.29: nothing to charge
            return
    steps.append([label, time.perf_counter() - began, rss_mb()])

def wrap(owner, name, label):
    original = getattr(owner, name)
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[label] = phases.get(label, 0.0) + time.perf_counter() - began
    setattr(owner, name, timed)

argv, lazy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
cli = argv[0] != "@run_job"
steps.append(["interpreter (to the harness's first line)", 0.0, rss_mb()])
if cli:
    step("typer", "typer")
    step("edgenet.cli (+ rich, its commands)", "edgenet.cli")
if argv[0] == "--help":
    step("typer.rich_utils (+ markdown-it)", "typer.rich_utils")
else:
    if cli:
        step("typer._adapters (+ pydantic)", "typer._adapters")
    step("numpy", "numpy")
    step("cv2", "cv2")
    step("ai_edge_litert", "ai_edge_litert.interpreter")
    step("edgenet's lazily imported modules", *lazy)
if cli:
    import typer.main, typer.core
    try:
        import typer._click.core as click_core
    except ImportError:
        import click.core as click_core
    wrap(typer.main, "get_command", "Typer: build the click commands (get_command)")
    wrap(click_core.Command, "parse_args", "Typer/click: parse the arguments (all)")
    if hasattr(typer.core, "_TyperParameter"):  # Typer 0.29+
        wrap(typer.core._TyperParameter, "process_value", "Typer/click: parse: coerce values (all)")
        wrap(typer.core, "build_runtime_param", "Typer/click: parse: coerce: build pydantic TypeAdapters")
if argv[0] != "--help":
    import edgenet.zoo, edgenet.delegates, edgenet.model, edgenet.run.loop, edgenet.sinks.table
    wrap(edgenet.model, "open_model", "open_model (all)")
    wrap(edgenet.zoo, "resolve", "open_model: zoo.resolve (find, verify)")
    wrap(edgenet.zoo, "check_integrity", "open_model: zoo.resolve: sha256 of the cached file")
    wrap(edgenet.delegates, "build_engine", "open_model: build_engine (interpreter, XNNPACK)")
    import edgenet.runtime
    wrap(edgenet.runtime, "inspect_model_file", "open_model: build_engine: parse the file")
    wrap(edgenet.runtime.Engine, "_new_interpreter", "open_model: build_engine: Interpreter()")
    wrap(edgenet.runtime.Engine, "_read_ops", "open_model: build_engine: _get_ops_details")
    wrap(edgenet.run.loop.Loop, "run", "the loop (decode, invoke, records)")
    wrap(edgenet.sinks.table.TableSink, "close", "the table (rich)")
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
os.dup2(devnull, 2)
if cli:
    from edgenet.cli import main
    call = lambda: main(argv)
else:
    from edgenet.run.job import InputOptions, Job, run_job
    call = lambda: run_job(Job(inputs=InputOptions(paths=(argv[1],))))
began = time.perf_counter()
code = call()
phases["main() in all"] = time.perf_counter() - began
steps.append(["main()", phases["main() in all"], rss_mb()])
total = time.perf_counter() - started
out.write(json.dumps({"steps": steps, "phases": phases, "code": code, "total": total}))
out.flush()
"""

NO_CLI = r"""
import sys
from edgenet.run.job import InputOptions, Job, run_job
sys.exit(run_job(Job(inputs=InputOptions(paths=(sys.argv[1],)))))
"""

MODULES = r"""
import json, os, sys
before = set(sys.modules)
devnull = os.open(os.devnull, os.O_WRONLY)
saved = os.dup(1)
os.dup2(devnull, 1)
os.dup2(devnull, 2)
argv = json.loads(sys.argv[1])
if argv[0] == "@run_job":
    loaded = set(sys.modules)
    from edgenet.run.job import InputOptions, Job, run_job
    run_job(Job(inputs=InputOptions(paths=(argv[1],))))
else:
    from edgenet.cli import main
    loaded = set(sys.modules)
    main(argv)
lazy = sorted(m for m in set(sys.modules) - loaded if m.startswith("edgenet"))
os.write(saved, json.dumps(lazy).encode())
"""


TREE = r"""
import json, sys, time
import typer
import typer.main
from edgenet import cli
app = cli.build_app(["classify"] if sys.argv[1] == "alone" else ["--help"])
began = time.perf_counter()
typer.main.get_command(app)
print(json.dumps(time.perf_counter() - began))
"""


def command_tree(runs: int) -> dict[str, tuple[float, float]]:
    """Typer's get_command for the whole command tree (what `edgenet --help` builds) against the tree
    `edgenet classify` builds (classify alone), each in fresh processes: (median, min) seconds."""
    found = {}
    for kind in ("whole tree", "alone"):
        values = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-c", TREE, kind], capture_output=True, text=True, cwd=str(ROOT)
            )
            values.append(json.loads(done.stdout))
        found[kind] = middle_and_least(values)
    return found


def group_of(module: str) -> str | None:
    """The group of a module, or None for the standard library (charged to whoever imported it)."""
    top = module.split(".")[0]
    for label, roots in GROUPS:
        if top in roots:
            if top == "edgenet" and "." in module:
                depth = 3 if module.startswith("edgenet.cli.") else 2
                return ".".join(module.split(".")[:depth])
            return label
    if top in sys.stdlib_module_names:
        return None
    return "other third-party"


def charged(lines: list[str]) -> dict[str, float]:
    """Self import times (ms) charged to groups: a third-party or edgenet module to its own group, a
    standard-library module to the nearest importer that is not standard library (json under edgenet.zoo is
    edgenet.zoo's cost; the interpreter's own start-up modules are "interpreter start-up")."""
    parsed = []
    for line in lines:
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", line)
        if match:
            parsed.append((len(match.group(2)) // 2, match.group(3), int(match.group(1)) / 1000.0))
    parents: dict[int, int] = {}
    waiting: dict[int, list[int]] = defaultdict(list)  # depth -> lines waiting for their parent
    for index, (depth, _module, _ms) in enumerate(parsed):  # children are printed before their parent
        for child in waiting.pop(depth + 1, []):
            parents[child] = index
        waiting[depth].append(index)
    sums: dict[str, float] = defaultdict(float)
    for index, (_depth, module, ms) in enumerate(parsed):
        owner, at = group_of(module), index
        while owner is None and at in parents:
            at = parents[at]
            owner = group_of(parsed[at][1])
        sums[owner or "interpreter start-up (site, encodings...)"] += ms
    return sums


def middle_and_least(values) -> tuple[float, float]:
    """(median, minimum): on a shared machine the minimum estimates an intrinsic cost best (noise only adds),
    the median is what a run typically pays."""
    values = list(values)
    return statistics.median(values), min(values)


def importtime_groups(argv: list[str], runs: int) -> dict[str, float]:
    """Median over runs of the self import times (ms) charged to each group (see `charged`)."""
    totals: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        command = ["-m", "edgenet", *argv] if argv[0] != "@run_job" else ["-c", NO_CLI, argv[1]]
        done = subprocess.run(
            [sys.executable, "-X", "importtime", *command], capture_output=True, text=True, cwd=str(ROOT)
        )
        for group, value in charged(done.stderr.splitlines()).items():
            totals[group].append(value)
    return {
        group: middle_and_least(values + [0.0] * (runs - len(values))) for group, values in totals.items()
    }


def phases(argv: list[str], runs: int) -> dict:
    lazy = subprocess.run(
        [sys.executable, "-c", MODULES, json.dumps(argv)], capture_output=True, text=True, cwd=str(ROOT)
    ).stdout
    found = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", HARNESS, json.dumps(argv), lazy or "[]"],
            capture_output=True,
            text=True,
            cwd=str(ROOT),
        )
        if done.returncode != 0 or not done.stdout:
            sys.exit(f"the harness failed: {done.stderr[-2000:]}")
        found.append(json.loads(done.stdout))
    steps = [
        (
            label,
            middle_and_least(run["steps"][i][1] for run in found),
            statistics.median(run["steps"][i][2] for run in found),
        )
        for i, (label, _, _) in enumerate(found[0]["steps"])
    ]
    names = dict.fromkeys(name for run in found for name in run["phases"])
    inside = {name: middle_and_least(run["phases"].get(name, 0.0) for run in found) for name in names}
    total = middle_and_least(run["total"] for run in found)
    return {"steps": steps, "phases": inside, "harness_total": total}


def show(title: str, groups: dict, profile: dict) -> None:
    print(f"\n== {title}   (ms: median / minimum over the runs)")
    print("imports by group, summed self times; the standard library charged to its importer:")
    for group, (median, least) in sorted(groups.items(), key=lambda item: -item[1][0]):
        if median >= 1.0:
            print(f"  {median:7.1f} / {least:6.1f}  {group}")
    print(f"  {sum(m for m, _ in groups.values()):7.1f}           all imports (sum of the medians)")
    print("step by step (wall; resident MiB after the step, median):")
    for label, (median, least), rss in profile["steps"]:
        print(f"  {median * 1000:7.1f} / {least * 1000:6.1f}  {rss:6.1f} MiB  {label}")
    print("inside main(), everything imported (wall):")
    for name, (median, least) in profile["phases"].items():
        print(f"  {median * 1000:7.1f} / {least * 1000:6.1f}  {name}")
    median, least = profile["harness_total"]
    print(f"  {median * 1000:7.1f} / {least * 1000:6.1f}  the harness from its first line to the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default=str(SHARED / "images" / "cat.bmp"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("EDGENET_MODEL_MIRROR") and (SHARED / "models").is_dir():
        os.environ["EDGENET_MODEL_MIRROR"] = str(SHARED / "models")
    results = {}
    views = (
        ("edgenet classify ONE.jpg", ["classify", args.image]),
        ("the same with no command line (a Job handed to run_job)", ["@run_job", args.image]),
        ("edgenet --help", ["--help"]),
    )
    for title, argv in views:
        results[title] = {"imports": importtime_groups(argv, args.runs), "profile": phases(argv, args.runs)}
    tree = command_tree(args.runs)
    if args.json:
        print(json.dumps({**results, "get_command": tree}, indent=1))
        return
    print(
        f"{args.runs} fresh processes per view, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    for title, result in results.items():
        show(title, result["imports"], result["profile"])
    print("\n== Typer's get_command (ms: median / minimum)")
    for kind, (median, least) in tree.items():
        label = "classify alone" if kind == "alone" else "the whole command tree"
        print(f"  {median * 1000:7.1f} / {least * 1000:6.1f}  {label}")


if __name__ == "__main__":
    main()
