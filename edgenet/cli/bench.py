"""`edgenet bench`: latency in LiteRT benchmark_model's terms, with the host's conditions."""

from __future__ import annotations

import typer

from edgenet.choices import BenchFormat, BenchMode, Delegate
from edgenet.cli.common import (
    AUTO_FORMAT_HELP,
    MODEL,
    OUTPUT,
    delegate_lib_option,
    delegate_option,
    delegate_options_option,
    device_option,
    for_stdout,
    handles_errors,
    parse_options,
)


@handles_errors
def bench(
    models: list[str] | None = typer.Option(
        None,
        "--model",
        "-m",
        metavar="NAME|FILE",
        help="Zoo name or .tflite path; repeat for several.",
        rich_help_panel=MODEL,
    ),
    all_models: bool = typer.Option(
        False,
        "--all",
        metavar="",
        help="Every zoo model present locally (cache, mirror).",
        rich_help_panel=MODEL,
    ),
    threads: str | None = typer.Option(
        None,
        "--threads",
        "-t",
        metavar="N[,N...]",
        help="Thread counts: 1,2,4 (default: usable cores, at most 4).",
        rich_help_panel=MODEL,
    ),
    delegate: Delegate = delegate_option(),
    device: str = device_option(),
    delegate_lib: str | None = delegate_lib_option(),
    delegate_option: list[str] | None = delegate_options_option(),
    runs: int = typer.Option(50, "--runs", min=1, metavar="N", help="At least this many timed runs."),
    min_seconds: float = typer.Option(
        1.0, "--min-seconds", min=0.0, metavar="S", help="And at least this long."
    ),
    warmup: int = typer.Option(
        5, "--warmup", min=0, metavar="N", help="Warm-up runs (the first one is first_ms)."
    ),
    mode: BenchMode = typer.Option(
        BenchMode.invoke, "--mode", help="invoke: invoke() alone; e2e: decode to top-k."
    ),
    images: str | None = typer.Option(
        None, "--images", metavar="DIR", help="e2e photos (default: the sample photos)."
    ),
    fmt: BenchFormat | None = typer.Option(
        None,
        "--format",
        "-f",
        help=f"Records as {AUTO_FORMAT_HELP}.",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write the records to this file.", rich_help_panel=OUTPUT
    ),
    compare: str | None = typer.Option(
        None,
        "--compare",
        metavar="CSV",
        help="Reference CSV: exit 1 if a p50 regressed.",
        rich_help_panel=OUTPUT,
    ),
    tolerance: float = typer.Option(
        0.30,
        "--tolerance",
        metavar="FRACTION",
        min=0.0,
        help="Allowed p50 slowdown for --compare.",
        rich_help_panel=OUTPUT,
    ),
):
    """Latency in LiteRT benchmark_model's terms (init, first, warmup, steady state) with host conditions."""
    from edgenet.bench_suite import BenchPlan, run_bench

    plan = BenchPlan(
        models=tuple(models or ()),
        all_models=all_models,
        threads=threads,
        delegate=delegate,
        device=device,
        delegate_lib=delegate_lib,
        delegate_options=parse_options(delegate_option),
        runs=runs,
        min_seconds=min_seconds,
        warmup=warmup,
        mode=mode,
        images=images,
        # with --output and no --format, the file's extension says (bench_report.format_for_output)
        format=for_stdout(fmt, BenchFormat.table, BenchFormat.json)
        if not output
        else fmt or BenchFormat.table,
        output=output,
        compare=compare,
        tolerance=tolerance,
    )
    raise typer.Exit(run_bench(plan))
