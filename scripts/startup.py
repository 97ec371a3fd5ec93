#!/usr/bin/env python3
"""Start-up of `edgenet classify ONE.jpg` against a minimal script doing the same, and `edgenet --help`.

    startup.py [--rounds 15] [--image PHOTO] [--model v2] [--threads N]
               [--prototypes] [--variant LABEL:VAR=VALUE[,...]] [--variant-bin LABEL:PATH] [--json]

Every round runs, in a shuffled order, one fresh process of each arm, so that load from other processes hits
every arm alike (this box is shared): wall time from fork to exit (time.perf_counter around the child) and the
child's own peak RSS (os.wait4's ru_maxrss). Arms:
- `edgenet classify ONE.jpg`: the console script next to this Python (the install `make` does: editable);
- `minimal`: Python that imports cv2, numpy and ai_edge_litert, loads the same cached .tflite (default
  XNNPACK, same threads), decodes, resizes, invokes and prints the top class: what edgenet does, with nothing
  else (no checksum, no argument parsing, no table);
- `edgenet --help`;
- floors: `python -c pass` and `python -c "import cv2, numpy, ai_edge_litert.interpreter"`.
`edgenet classify ONE.jpg -f jsonl -o /dev/null` shows what the table costs. --prototypes adds what a command
line could cost at best: the same classify with no command line at all (a Job handed to
edgenet.run.job.run_job; with the table, and with jsonl), `--help` from Typer without rich
(rich_markup_mode=None), and the floor of a hand-written `--help` (Python + edgenet.entry + a printed
text). --variant runs the edgenet arms again under other environment variables, --variant-bin with another
edgenet executable. Prints each arm's median, interquartile range and min-max, and the ratios
edgenet / minimal (wall, peak RSS) as the ratio of the medians and as the median of the per-round ratios.

Mind the bytecode: with PYTHONDONTWRITEBYTECODE set (as in this project's sessions) or a source tree the user
cannot write to, an editable install compiles every edgenet module on every run; pip compiles a non-editable
install when it installs it. `--variant pyc:PYTHONDONTWRITEBYTECODE=,PYTHONPYCACHEPREFIX=/tmp/pyc` measures
the editable install with its bytecode cached (the warm-up run writes it).

    # Typer 0.28 (before pydantic) first on the path, and a non-editable install, beside the editable one:
    .venv/bin/pip install --no-deps --target /tmp/typer-0.28 typer==0.28.0
    python3 -m venv /tmp/edgenet-ne && /tmp/edgenet-ne/bin/pip install .
    .venv/bin/python scripts/startup.py --prototypes --variant typer-0.28:PYTHONPATH=/tmp/typer-0.28 \
        --variant-bin non-editable:/tmp/edgenet-ne/bin/edgenet
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGENET_SHARED", ROOT.parent / "shared"))

MINIMAL = r"""
import sys
import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

model, image, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
interpreter = Interpreter(model_path=model, num_threads=threads)
interpreter.allocate_tensors()
detail = interpreter.get_input_details()[0]
_, height, width, _ = detail["shape"]
rgb = cv2.cvtColor(cv2.imread(image), cv2.COLOR_BGR2RGB)
interpreter.set_tensor(detail["index"], cv2.resize(rgb, (int(width), int(height)))[None])
interpreter.invoke()
scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
best = int(np.argmax(scores))
print(image, best, int(scores[best]))
"""


# Prototypes of what the command line could cost at best (--prototypes): the same run with no command line
# at all (a Job handed to the run layer, as classify builds it from its defaults), and the floor of a
# hand-written `--help` (Python, edgenet.entry, a printed text).
NO_CLI = r"""
import sys
from edgenet.entry import install_quiet_exit
install_quiet_exit()
from edgenet.run.job import InputOptions, Job, run_job
sys.exit(run_job(Job(inputs=InputOptions(paths=(sys.argv[1],)))))
"""
NO_CLI_JSONL = r"""
import os, sys
from edgenet.entry import install_quiet_exit
install_quiet_exit()
from edgenet.choices import RecordFormat
from edgenet.run.job import InputOptions, Job, OutputOptions, run_job
output = OutputOptions(format=RecordFormat.jsonl, output=os.devnull)
sys.exit(run_job(Job(inputs=InputOptions(paths=(sys.argv[1],)), output=output)))
"""
HELP_PLAIN = r"""
import sys
from edgenet.entry import install_quiet_exit
install_quiet_exit()
from edgenet import cli
cli.app.rich_markup_mode = None  # click's plain help: typer.rich_utils (rich, markdown-it) not imported
sys.exit(cli.main(["--help"]))
"""
HELP_FLOOR = r"""
from edgenet.entry import install_quiet_exit
install_quiet_exit()
print("Usage: edgenet [OPTIONS] COMMAND [ARGS]... (a fixed text of about 1.5 kB)" + " " * 1500)
"""


def run_once(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process; its output is discarded (as from cron to a file)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"{' '.join(command)} failed with exit code {child.returncode}")
    return wall, usage.ru_maxrss / 1024.0


def summary(values: list[float]) -> dict:
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {
        "median": statistics.median(values),
        "p25": quartiles[0],
        "p75": quartiles[2],
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def parse_variant(text: str) -> tuple[str, dict]:
    label, _, assignments = text.partition(":")
    extra = {}
    for pair in filter(None, assignments.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--variant {text}: expected LABEL:VAR=VALUE[,VAR=VALUE]")
        extra[key] = value
    return label, extra


def arms(args, model_path: str, edgenet: str, threads: int) -> dict[str, tuple[list[str], dict]]:
    """label -> (command, environment)."""
    env = dict(os.environ)
    python = sys.executable
    image = args.image
    classify = [*args.classify_args]
    table = {
        "edgenet classify": ([edgenet, "classify", image, *classify], env),
        "minimal": ([python, "-c", MINIMAL, model_path, image, str(threads)], env),
        "edgenet classify -f jsonl": (
            [edgenet, "classify", image, *classify, "-f", "jsonl", "-o", os.devnull],
            env,
        ),
        "edgenet --help": ([edgenet, "--help"], env),
        "python -c pass": ([python, "-c", "pass"], env),
        "imports only": ([python, "-c", "import cv2, numpy, ai_edge_litert.interpreter"], env),
    }
    if args.prototypes:
        table["prototype: no command line (Job -> run_job)"] = ([python, "-c", NO_CLI, image], env)
        table["prototype: no command line, jsonl"] = ([python, "-c", NO_CLI_JSONL, image], env)
        table["prototype: --help, Typer without rich"] = ([python, "-c", HELP_PLAIN], env)
        table["prototype: hand-written --help (floor)"] = ([python, "-c", HELP_FLOOR], env)
    for text in args.variant:
        label, extra = parse_variant(text)
        table[f"{label}: edgenet classify"] = ([edgenet, "classify", image, *classify], {**env, **extra})
        table[f"{label}: edgenet --help"] = ([edgenet, "--help"], {**env, **extra})
    for text in args.variant_bin:
        label, _, path = text.partition(":")
        table[f"{label}: edgenet classify"] = ([path, "classify", image, *classify], env)
        table[f"{label}: edgenet --help"] = ([path, "--help"], env)
    return table


def measure(table: dict, rounds: int, seed: int) -> dict[str, dict[str, list[float]]]:
    rng = random.Random(seed)
    found = {label: {"wall": [], "rss": []} for label in table}
    for command, env in table.values():  # one unrecorded run each: caches warm, as on a board in use
        run_once(command, env)
    for round_number in range(rounds):
        order = list(table)
        rng.shuffle(order)
        for label in order:
            wall, rss = run_once(*table[label])
            found[label]["wall"].append(wall)
            found[label]["rss"].append(rss)
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr, flush=True)
    return found


def ratios(found: dict, top: str, bottom: str) -> dict:
    result = {}
    for kind in ("wall", "rss"):
        mine, theirs = found[top][kind], found[bottom][kind]
        paired = [a / b for a, b in zip(mine, theirs, strict=True)]
        result[kind] = {
            "of_medians": statistics.median(mine) / statistics.median(theirs),
            "median_of_rounds": statistics.median(paired),
            "rounds_min": min(paired),
            "rounds_max": max(paired),
        }
    return result


def report(found: dict, args) -> dict:
    document = {"arms": {label: {k: summary(v) for k, v in kinds.items()} for label, kinds in found.items()}}
    document["ratios"] = {"edgenet classify / minimal": ratios(found, "edgenet classify", "minimal")}
    for label in found:
        if label.endswith(("edgenet classify", "-f jsonl")) or label.startswith("prototype: no command"):
            if label == "edgenet classify":
                continue
            document["ratios"][f"{label} / minimal"] = ratios(found, label, "minimal")
    document["load_average"] = os.getloadavg()
    document["cores"] = os.cpu_count()
    if args.json:
        print(json.dumps(document, indent=1))
        return document
    print(f"{args.rounds} interleaved rounds, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"{'arm':<34} {'wall s: median (IQR) [min-max]':<36} peak RSS MiB: median [min-max]")
    for label, kinds in document["arms"].items():
        wall, rss = kinds["wall"], kinds["rss"]
        print(
            f"{label:<34} {wall['median']:.3f} ({wall['p25']:.3f}-{wall['p75']:.3f}) "
            f"[{wall['min']:.3f}-{wall['max']:.3f}]   {rss['median']:.1f} [{rss['min']:.1f}-{rss['max']:.1f}]"
        )
    for name, pair in document["ratios"].items():
        wall, rss = pair["wall"], pair["rss"]
        print(
            f"{name}: wall {wall['of_medians']:.2f}x (per round {wall['median_of_rounds']:.2f}x, "
            f"{wall['rounds_min']:.2f}-{wall['rounds_max']:.2f}); peak RSS {rss['of_medians']:.2f}x"
        )
    return document


FACTS = """
import json, sys
from edgenet import zoo
from edgenet.runtime import default_threads
print(json.dumps({"path": str(zoo.resolve(sys.argv[1]).path), "default": zoo.default_model(),
                  "threads": default_threads(pipeline=True)}))
"""


def model_facts(model: str) -> dict:
    """The model's cached path (pulled and verified once, before timing), the default model, classify's
    default threads: asked of a child, so that this process stays small (a child's peak RSS starts from its
    parent's resident size at fork, which would lift the floor of every measurement)."""
    done = subprocess.run(
        [sys.executable, "-c", FACTS, model], capture_output=True, text=True, cwd=str(ROOT), check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--image", default=str(SHARED / "images" / "parrot.jpg"))  # the issue: one.jpg
    parser.add_argument(
        "--model", default="v2", help="zoo name; the minimal script loads the same cached file"
    )
    parser.add_argument("--threads", type=int, help="both sides (default: what classify uses here)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL:VAR=VALUE[,...]")
    parser.add_argument("--variant-bin", action="append", default=[], metavar="LABEL:PATH")
    parser.add_argument("--prototypes", action="store_true", help="also the no-CLI and fast --help floors")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("EDGENET_MODEL_MIRROR") and (SHARED / "models").is_dir():
        os.environ["EDGENET_MODEL_MIRROR"] = str(SHARED / "models")
    facts = model_facts(args.model)
    threads = args.threads or facts["threads"]
    model_path = facts["path"]
    args.classify_args = (["--model", args.model] if args.model != facts["default"] else []) + (
        ["--threads", str(args.threads)] if args.threads else []
    )
    edgenet = str(Path(sys.executable).with_name("edgenet"))
    table = arms(args, model_path, edgenet, threads)
    report(measure(table, args.rounds, args.seed), args)


if __name__ == "__main__":
    main()
