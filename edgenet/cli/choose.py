"""`edgenet choose`: the most accurate zoo model that keeps up on this board, and the frontier."""

from __future__ import annotations

import typer

from edgenet.choices import Delegate, ReportFormat, Task
from edgenet.cli.common import MODEL, OUTPUT, delegate_option, handles_errors, threads_option

BUDGET, MEASURE = "Budget", "Measurement"


@handles_errors
def choose(
    fps: float | None = typer.Option(
        None,
        "--fps",
        metavar="F",
        help="Frames per second to keep up with (budget 1000/F ms).",
        rich_help_panel=BUDGET,
    ),
    budget_ms: float | None = typer.Option(
        None, "--budget-ms", metavar="MS", help="Or a budget per frame, end to end.", rich_help_panel=BUDGET
    ),
    task: Task = typer.Option(
        Task.classify,
        "--task",
        help="classify: ImageNet classifiers; detect: the SSD detectors.",
        rich_help_panel=MODEL,
    ),
    models: list[str] | None = typer.Option(
        None, "--model", "-m", metavar="NAME", help="Only these zoo models (repeat).", rich_help_panel=MODEL
    ),
    threads: int | None = threads_option(),
    delegate: Delegate = delegate_option(),
    images: str | None = typer.Option(
        None,
        "--images",
        metavar="DIR",
        help="Photos to time on (default: the sample photos).",
        rich_help_panel=MEASURE,
    ),
    eval_folder: str | None = typer.Option(
        None,
        "--eval",
        metavar="DIR",
        help="Your labelled photos (as edgenet eval): accuracy measured, not published.",
        rich_help_panel=MEASURE,
    ),
    pull: bool = typer.Option(
        True,
        "--pull/--no-pull",
        help="Fetch the models not here yet (--no-pull: only those already here).",
        rich_help_panel=MEASURE,
    ),
    refresh: bool = typer.Option(
        False, "--refresh", help="Measure again, ignoring this board's cache.", rich_help_panel=MEASURE
    ),
    runs: int = typer.Option(
        30, "--runs", min=1, metavar="N", help="At least N frames per model.", rich_help_panel=MEASURE
    ),
    seconds: float = typer.Option(
        2.0,
        "--seconds",
        min=0.0,
        metavar="S",
        help="And at least S seconds per model.",
        rich_help_panel=MEASURE,
    ),
    warmup: int = typer.Option(
        3, "--warmup", min=0, metavar="N", help="Frames before timing.", rich_help_panel=MEASURE
    ),
    fmt: ReportFormat = typer.Option(
        ReportFormat.table, "--format", "-f", help="Report as.", rich_help_panel=OUTPUT
    ),
    plot: str | None = typer.Option(
        None,
        "--plot",
        metavar="FILE",
        help="Draw the frontier (.png or .svg; needs matplotlib, the plot extra).",
        rich_help_panel=OUTPUT,
    ),
):
    """The most accurate model that keeps up here: every zoo model timed end to end on this board (cached),
    the accuracy-latency frontier, and the command to use the choice."""
    from edgenet.choose.run import ChoosePlan, run_choose

    plan = ChoosePlan(
        task=task,
        fps=fps,
        budget_ms=budget_ms,
        images=images,
        eval_folder=eval_folder,
        models=tuple(models or ()),
        threads=threads,
        delegate=delegate,
        refresh=refresh,
        pull=pull,
        runs=runs,
        min_seconds=seconds,
        warmup=warmup,
        format=fmt,
        plot=plot,
    )
    raise typer.Exit(run_choose(plan))
