"""`edgenet models list|pull|path|verify|info` and the hidden `samples`."""

from __future__ import annotations

import json
import sys

import typer

from edgenet.choices import ReportFormat
from edgenet.cli.common import AUTO_FORMAT_HELP, for_stdout, handles_errors, threads_option
from edgenet.console import say


def _model_rows() -> list[dict]:
    from edgenet import zoo

    return [
        spec.to_dict(
            present=zoo.is_present(spec.artifact),
            edgetpu_present=zoo.is_present(spec.edgetpu) if spec.edgetpu else None,
        )
        for spec in zoo.catalog().values()
    ]


@handles_errors
def models_list(
    fmt: ReportFormat | None = typer.Option(
        None, "--format", "-f", help=f"Report as {AUTO_FORMAT_HELP}.", show_default=False
    ),
):
    """Every model in the zoo, and whether it is in the local cache."""
    fmt = for_stdout(fmt, ReportFormat.table, ReportFormat.json)
    from edgenet import zoo

    rows = _model_rows()
    if fmt == ReportFormat.json:
        print(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgenet model zoo (cache: {zoo.home() / 'models'})")
    for column in ("name", "family", "input", "quant", "MB", "present", "Edge TPU twin", "notes"):
        table.add_column(column, no_wrap=column in ("name", "input", "MB", "present"))
    default = zoo.default_model()
    for row in rows:
        twin = "-" if row["edgetpu"] is None else ("present" if row["edgetpu_present"] else "available")
        size = f"{row['size'] / 1e6:.1f}" if row["size"] else "?"
        name = row["name"] + (" (default)" if row["name"] == default else "")
        note = "latency only (random weights)" if row["latency_only"] else row["notes"].split(". ")[0]
        table.add_row(
            name,
            row["family"],
            f"{row['input'][0]}",
            row["quant"],
            size,
            "yes" if row["present"] else "no",
            twin,
            note,
        )
    Console(width=200 if not sys.stdout.isatty() else None, highlight=False).print(table)


@handles_errors
def models_pull(
    names: list[str] = typer.Argument(None, metavar="NAME", help="Zoo names (default: the default model)."),
    edgetpu: bool = typer.Option(False, "--edgetpu", help="Also pull the Edge TPU twins."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
):
    """Download, verify and cache models (the mirror first, then upstream)."""
    from edgenet import zoo
    from edgenet.run.stop import StopSignals

    with StopSignals() as stop:  # a SIGTERM ends a download cleanly (exit 130, nothing half-written kept)
        for name in names or [zoo.default_model()]:
            spec = zoo.get_spec(name)
            artifacts = [spec.artifact] + ([spec.edgetpu] if edgetpu and spec.edgetpu else [])
            for artifact in artifacts:
                path = zoo.pull(artifact, force=force, should_stop=lambda: bool(stop))
                say(f"{name}: {path}")


@handles_errors
def models_path(
    name: str = typer.Argument(None, metavar="NAME"),
    edgetpu: bool = typer.Option(False, "--edgetpu"),
):
    """Print the local path of a model (pulling it if needed)."""
    from edgenet import zoo
    from edgenet.run.stop import StopSignals

    with StopSignals() as stop:
        print(zoo.resolve(name, edgetpu=edgetpu, should_stop=lambda: bool(stop)).path)


@handles_errors
def models_verify(
    names: list[str] = typer.Argument(None, metavar="NAME", help="Zoo names (default: every cached model)."),
    fmt: ReportFormat | None = typer.Option(
        None, "--format", "-f", help=f"Report as {AUTO_FORMAT_HELP}.", show_default=False
    ),
):
    """Check cached models against the catalog's checksums. Exit 3 if any differ."""
    fmt = for_stdout(fmt, ReportFormat.table, ReportFormat.json)
    from edgenet import zoo

    specs = [zoo.get_spec(n) for n in names] if names else list(zoo.catalog().values())
    results = []
    for spec in specs:
        for artifact in filter(None, (spec.artifact, spec.edgetpu)):
            missing = not zoo.cache_path(artifact).exists()
            if missing and (not names or artifact is spec.edgetpu):
                continue  # verify checks what is cached; a twin nobody pulled is not a failure
            problem = f"not pulled: run edgenet models pull {spec.name}" if missing else zoo.verify(artifact)
            results.append(
                {"name": spec.name, "file": artifact.file, "ok": problem is None, "problem": problem}
            )
    if fmt == ReportFormat.json:
        print(json.dumps(results, indent=1))
    else:
        for row in results:
            say(
                f"{'ok  ' if row['ok'] else 'FAIL'} {row['name']}: {row['file']}"
                + (f" ({row['problem']})" if row["problem"] else ""),
                "" if row["ok"] else "red",
            )
        if not results:
            say("no cached models to verify (edgenet models pull NAME)")
    if any(not row["ok"] for row in results):
        raise typer.Exit(3)


@handles_errors
def models_info(
    name: str = typer.Argument(
        None, metavar="NAME|FILE", help="Zoo name or .tflite path (default: the default model)."
    ),
    threads: int | None = threads_option(),
    fmt: ReportFormat | None = typer.Option(
        None, "--format", "-f", help=f"Report as {AUTO_FORMAT_HELP}.", show_default=False
    ),
):
    """What a model is: catalog entry, tensors, quantization, ops and delegate partitions."""
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


@handles_errors
def samples():
    """Print the folder of sample photos, pulling them (google-coral/test_data) if needed."""
    from edgenet import zoo
    from edgenet.run.stop import StopSignals

    with StopSignals() as stop:
        print(zoo.sample_images(should_stop=lambda: bool(stop)))
