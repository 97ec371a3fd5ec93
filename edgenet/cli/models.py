"""`edgenet models list|pull|build|path|verify|info` and the hidden `samples`."""

from __future__ import annotations

import json
import sys

import typer

from edgenet.choices import ReportFormat
from edgenet.cli.common import AUTO_FORMAT_HELP, for_stdout, handles_errors, text_argument, threads_option
from edgenet.console import say

# models list: columns in the order they give way when the terminal is narrow (the first three never do)
LIST_COLUMNS = ("name", "present", "MB", "input", "TPU twin", "family", "quant", "notes")
NOTES_MIN_WIDTH = 30


def _list_cells(row: dict, default: str) -> dict[str, str]:
    twin = "-" if row["edgetpu"] is None else ("present" if row["edgetpu_present"] else "available")
    size = f"{row['size'] / 1e6:.1f}" if row["size"] else (row["size_hint"] or "?")
    if row.get("local_build"):
        build = row["local_build"]
        note = f"local build, {build['weights']} weights" + (" (latency only)" if row["latency_only"] else "")
    elif row["latency_only"]:
        note = f"latency only (random weights); {row['get']}"
    else:
        note = row["notes"].split(". ")[0]
    return {
        "name": row["name"] + (" (default)" if row["name"] == default else ""),
        "present": row["where"] or "no",
        "MB": size,
        "input": str(row["input"][0]),
        "TPU twin": twin,
        "family": row["family"],
        "quant": row["quant"],
        "notes": note,
    }


def list_table(rows: list[dict], default: str, width: int | None, title: str):
    """The zoo as a rich Table that fits `width` columns (None: any width): the notes go first, then
    columns from the end of LIST_COLUMNS until it fits, so that names, sizes and places are never cut."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = [_list_cells(row, default) for row in rows]

    def table_of(columns) -> Table:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
        for column in columns:
            table.add_column(column, no_wrap=column != "notes", overflow="fold")
        for row in cells:
            table.add_row(*(row[column] for column in columns))
        return table

    if width is None:
        return table_of(LIST_COLUMNS)
    measure = Console(width=10_000)

    def needs(columns) -> int:
        return table_of(columns).__rich_measure__(measure, measure.options).maximum

    columns = [column for column in LIST_COLUMNS if column != "notes"]
    while len(columns) > 3 and needs(columns) > width:
        columns.pop()
    if len(columns) == len(LIST_COLUMNS) - 1 and width - needs(columns) >= NOTES_MIN_WIDTH:
        columns.append("notes")  # the one column that wraps, when it has room to be read
    return table_of(columns)


@handles_errors
def models_list(
    fmt: ReportFormat | None = typer.Option(
        None, "--format", "-f", help=f"Report as {AUTO_FORMAT_HELP}.", show_default=False
    ),
):
    """Every model in the zoo, and where it is: the cache, a local build, the mirror folder."""
    fmt = for_stdout(fmt, ReportFormat.table, ReportFormat.json)
    from rich.console import Console

    from edgenet import zoo
    from edgenet.model_info import model_rows

    rows = model_rows()
    if fmt == ReportFormat.json:
        print(json.dumps(rows, indent=1))
        return
    terminal = sys.stdout.isatty()
    console = Console(width=None if terminal else 200, highlight=False)
    title = f"edgenet model zoo (cache: {zoo.home() / 'models'})"
    console.print(list_table(rows, zoo.default_model(), console.width if terminal else None, title))


@handles_errors
def models_pull(
    names: list[str] = text_argument(None, "NAME...", "Zoo names (default: the default model)."),
    edgetpu: bool = typer.Option(False, "--edgetpu", help="Also pull the Edge TPU twins."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Report as."),
):
    """Download, verify and cache models (the mirror first, then upstream); -f json says what came from
    where."""
    from edgenet import zoo
    from edgenet.run.stop import StopSignals

    pulled = []
    try:
        with StopSignals() as stop:  # a SIGTERM ends a download cleanly (exit 130, nothing half-written kept)
            for name in names or [zoo.default_model()]:
                spec = zoo.get_spec(name)
                artifacts = [spec.artifact] + ([spec.edgetpu] if edgetpu and spec.edgetpu else [])
                for artifact in artifacts:
                    got = zoo.obtain(artifact, force=force, should_stop=lambda: bool(stop))
                    pulled.append(_pulled_record(spec.name, artifact.file, got))
                    if fmt == ReportFormat.table:
                        where = "already here" if got.origin in ("cache", "local build") else got.location
                        say(f"{spec.name}: {got.path} ({got.origin}: {where})")
    finally:  # what was pulled before a failure or a stop is reported too
        if fmt == ReportFormat.json:
            print(json.dumps(pulled, indent=1))


def _pulled_record(name: str, file: str, got) -> dict:
    return {
        "name": name,
        "file": file,
        "path": str(got.path),
        "from": got.origin,
        "location": got.location,
        "bytes": got.path.stat().st_size,
    }


@handles_errors
def models_build(
    name: str = text_argument(..., "NAME", "A zoo model with no upstream file (see models list)."),
    size: int | None = typer.Option(
        None, "--size", metavar="N", help="Input resolution, a multiple of 32 (default: the catalog's)."
    ),
    weights: str = typer.Option(
        "auto",
        "--weights",
        metavar="auto|imagenet|random",
        help="auto: Keras ImageNet weights where they download (V1-V3), else random (latency only).",
    ),
    images: str | None = typer.Option(
        None, "--images", metavar="DIR", help="Calibration photos (default: the shared or sample photos)."
    ),
    samples: int = typer.Option(100, "--samples", metavar="N", help="Calibration samples."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Report as."),
):
    """Build a model that has no upstream file with scripts/build_models.py (TensorFlow, in .venv-build)
    and register it in the cache as a local build."""
    from edgenet import zoo
    from edgenet.builds import BuildRequest, build_model
    from edgenet.run.stop import StopSignals

    request = BuildRequest(name=name, size=size, weights=weights, images=images, samples=samples)
    with StopSignals() as stop:  # Ctrl-C or SIGTERM ends the build: exit 130, nothing registered
        build = build_model(request, should_stop=lambda: bool(stop), progress=say)
    path = zoo.cache_path(zoo.get_spec(build.name).artifact)
    if fmt == ReportFormat.json:
        print(json.dumps({**build.to_dict(), "path": str(path)}, indent=1))
        return
    say(
        f"{build.name}: local build registered ({path}, {build.size:,} bytes, input {build.input}, "
        f"{build.weights} weights, TensorFlow {build.tensorflow})"
        + ("; latency only: its predictions mean nothing" if build.latency_only else "")
    )


@handles_errors
def models_path(
    name: str = text_argument(None, "NAME"),
    edgetpu: bool = typer.Option(False, "--edgetpu"),
):
    """Print the local path of a model (pulling it if needed)."""
    from edgenet import zoo
    from edgenet.run.stop import StopSignals

    with StopSignals() as stop:
        print(zoo.resolve(name, edgetpu=edgetpu, should_stop=lambda: bool(stop)).path)


@handles_errors
def models_verify(
    names: list[str] = text_argument(None, "NAME...", "Zoo names (default: every cached model)."),
    fmt: ReportFormat | None = typer.Option(
        None, "--format", "-f", help=f"Report as {AUTO_FORMAT_HELP}.", show_default=False
    ),
):
    """Check cached models against the catalog's checksums (or their local build's). Exit 3 if any differ."""
    fmt = for_stdout(fmt, ReportFormat.table, ReportFormat.json)
    from edgenet import zoo
    from edgenet.model_info import how_to_get

    specs = [zoo.get_spec(n) for n in names] if names else list(zoo.catalog().values())
    results = []
    for spec in specs:
        for artifact in filter(None, (spec.artifact, spec.edgetpu)):
            path = zoo.cache_path(artifact)
            if not path.exists() and (not names or artifact is spec.edgetpu):
                continue  # verify checks what is cached; a twin nobody pulled is not a failure
            build = None
            if not path.exists():
                problem = f"not here: run {how_to_get(spec)}"
            else:
                problem, build = zoo.accepted(path, artifact)
            results.append(
                {
                    "name": spec.name,
                    "file": artifact.file,
                    "ok": problem is None,
                    "problem": problem,
                    "local_build": build is not None,
                }
            )
    if fmt == ReportFormat.json:
        print(json.dumps(results, indent=1))
    else:
        for row in results:
            say(
                f"{'ok  ' if row['ok'] else 'FAIL'} {row['name']}: {row['file']}"
                + (" (local build)" if row["local_build"] else "")
                + (f" ({row['problem']})" if row["problem"] else ""),
                "" if row["ok"] else "red",
            )
        if not results:
            say("no cached models to verify (edgenet models pull NAME)")
    if any(not row["ok"] for row in results):
        raise typer.Exit(3)


@handles_errors
def models_info(
    name: str = text_argument(None, "NAME|FILE", "Zoo name or .tflite path (default: the default model)."),
    threads: int | None = threads_option(),
    fmt: ReportFormat | None = typer.Option(
        None, "--format", "-f", help=f"Report as {AUTO_FORMAT_HELP}.", show_default=False
    ),
):
    """What a model is: catalog entry, tensors, quantization, ops and delegate partitions (the catalog entry
    alone, and how to get the file, for a zoo model that is not here)."""
    fmt = for_stdout(fmt, ReportFormat.table, ReportFormat.json)
    from edgenet.model_info import describe_model

    info = describe_model(name, threads)
    if fmt == ReportFormat.json:
        print(json.dumps(info, indent=1))
        return
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"{key:>14}: {value}")
    if not info.get("present", True):
        say(f"{info['name']} is not here (no cache, no mirror folder holds it): {info['get']}")


@handles_errors
def samples():
    """Print the folder of sample photos, pulling them (google-coral/test_data) if needed."""
    from edgenet import zoo
    from edgenet.run.stop import StopSignals

    with StopSignals() as stop:
        print(zoo.sample_images(should_stop=lambda: bool(stop)))
