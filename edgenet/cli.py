"""Typer app. One function per command: parse options, build the pipeline, render.

Human output (tables, progress, warnings, summaries) goes to stderr; data (jsonl, csv, json) to stdout or
--output. Errors are one line on stderr and an exit code (see edgenet.errors).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from typing import Optional

import typer

from edgenet.errors import EXIT_INTERRUPTED, EdgenetError, UsageError

app = typer.Typer(
    help="Run quantized MobileNet image classifiers on small boards (CPU/XNNPACK or Coral Edge TPU).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="The model zoo: list, pull, verify, inspect.", no_args_is_help=True)
app.add_typer(models_app, name="models")


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the run stops between frames and flushes."""


def _on_sigterm(signum, frame):
    raise Interrupted()


def say(message: str, style: str = "") -> None:
    """One human line on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(message, style=style or None)


def warn(message: str) -> None:
    say(f"warning: {message}", "yellow")


def fail(error: EdgenetError) -> typer.Exit:
    print(f"edgenet: error: {error}", file=sys.stderr, flush=True)
    return typer.Exit(error.exit_code)


def handles_errors(command):
    """Every EdgenetError becomes its one-line message and exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgenetError as error:
            raise fail(error) from None
        except BrokenPipeError:
            # stdout closed early (e.g. `| head`): nothing more to say, and Python must not complain either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None

    return wrapper


def _parse_range(text: Optional[str]) -> Optional[tuple[float, float]]:
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--input-range takes LO,HI (e.g. -1,1 or 0,1), not {text!r}") from None
    if not lo < hi:
        raise UsageError(f"--input-range: LO must be below HI, got {text!r}")
    return (lo, hi)


ModelOption = typer.Option(None, "--model", "-m", help="Zoo name (edgenet models list) or path to a .tflite.")
ThreadsOption = typer.Option(None, "--threads", "-t", help="Inference threads (default: the measured best).")
DelegateOption = typer.Option("auto", "--delegate", help="auto | cpu | xnnpack | edgetpu.")
DeviceOption = typer.Option("", "--device", help="Edge TPU: '' (any), ':N', 'usb', 'usb:N', 'pci', 'pci:N'.")
DelegateLibOption = typer.Option(None, "--delegate-lib", help="Load this TFLite external delegate (.so).")


@app.command()
@handles_errors
def classify(
    inputs: list[str] = typer.Argument(None, help="Image files, folders (recursive) or globs."),
    model: Optional[str] = ModelOption,
    labels: Optional[str] = typer.Option(None, "--labels", help="Label file for a .tflite given by path."),
    threads: Optional[int] = ThreadsOption,
    delegate: str = DelegateOption,
    device: str = DeviceOption,
    delegate_lib: Optional[str] = DelegateLibOption,
    resize: str = typer.Option("crop", "--resize", help="crop (shorter side + centre crop) | stretch."),
    input_range: Optional[str] = typer.Option(None, "--input-range", help="Override a float input's range: LO,HI."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many classes per image."),
    threshold: float = typer.Option(0.0, "--threshold", min=0.0, max=1.0, help="Drop classes scoring below."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | jsonl | csv."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Append records to this file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
):
    """Classify images; one record per image (jsonl/csv to stdout, table to stderr)."""
    from edgenet.sinks import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not inputs:
        raise UsageError("give images, folders or globs to classify (e.g. edgenet classify photos/)")
    threads = threads or default_threads()
    exit_code = run_classify(inputs, model=model, labels=labels, threads=threads, delegate=delegate,
                             device=device, delegate_lib=delegate_lib, resize=resize,
                             input_range=_parse_range(input_range), top_k=top_k, threshold=threshold,
                             fmt=fmt, output=output, quiet=quiet)
    raise typer.Exit(exit_code)


def default_threads() -> int:
    from edgenet.bench import default_threads as measured_default

    return measured_default()


def run_classify(inputs, *, fmt, output, quiet, **model_options) -> int:
    from edgenet.pipeline import classify_frames, open_model
    from edgenet.sinks import open_sink
    from edgenet.sources import expand_inputs, image_frames

    opened = open_model(model_options.pop("model"), labels_file=model_options.pop("labels"), **model_options)
    for message in opened.warnings:
        warn(message)
    paths = expand_inputs(inputs)
    if not paths:
        raise UsageError("no images found in the given folders (looked for .jpg .jpeg .png .bmp .webp .tif)")
    sink = open_sink(fmt, output)
    stats = RunStats()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    interrupted = False
    progress = _progress(len(paths), quiet)
    try:
        for result in classify_frames(image_frames(paths), opened.classifier):
            record = result.to_dict()
            sink.write(record)
            stats.add(record)
            if progress:
                progress.advance()
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
    finally:
        if progress:
            progress.stop()
        sink.close()
        signal.signal(signal.SIGTERM, previous)
    if not quiet:
        say(stats.summary(opened.classifier, "images"))
    if interrupted:
        say("interrupted: the records above are complete and flushed", "yellow")
        return EXIT_INTERRUPTED
    return 1 if stats.errors else 0


class _Progress:
    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), transient=True,
                                  console=__import__("rich.console").console.Console(stderr=True))
        self._task = self._progress.add_task("classify", total=total)
        self._progress.start()

    def advance(self) -> None:
        self._progress.advance(self._task)

    def stop(self) -> None:
        self._progress.stop()


def _progress(total: int, quiet: bool):
    if quiet or total < 2 or not sys.stderr.isatty():
        return None
    return _Progress(total)


class RunStats:
    """Counts and latency percentiles for the end-of-run summary."""

    def __init__(self):
        import time

        self.started = time.perf_counter()
        self.count = 0
        self.errors = 0
        self.inference: list[float] = []
        self.total: list[float] = []

    def add(self, record: dict) -> None:
        self.count += 1
        if "error" in record:
            self.errors += 1
            return
        self.inference.append(record["latency_ms"]["inference"])
        self.total.append(record["latency_ms"]["total"])

    def summary(self, classifier, noun: str) -> str:
        import time

        from edgenet.bench import percentile

        elapsed = time.perf_counter() - self.started
        engine = classifier.engine
        parts = [f"{self.count} {noun}", f"{self.errors} errors"]
        if self.inference:
            parts.append(f"inference p50 {percentile(self.inference, 50):.2f} ms p90 "
                         f"{percentile(self.inference, 90):.2f} ms")
            parts.append(f"per image p50 {percentile(self.total, 50):.2f} ms")
        if elapsed > 0 and self.count:
            parts.append(f"{self.count / elapsed:.1f} {noun}/s")
        parts.append(f"{classifier.model_name} on {engine.delegate}, {engine.threads} thread(s), "
                     f"{engine.backend.name} {engine.backend.version}")
        return ", ".join(parts)


@app.command(name="eval")
@handles_errors
def evaluate(
    folder: str = typer.Argument(..., help="ImageNet-style folder: class = parent folder or file-name prefix."),
    model: Optional[str] = ModelOption,
    labels: Optional[str] = typer.Option(None, "--labels", help="Label file for a .tflite given by path."),
    threads: Optional[int] = ThreadsOption,
    delegate: str = DelegateOption,
    resize: str = typer.Option("crop", "--resize", help="crop | stretch."),
    input_range: Optional[str] = typer.Option(None, "--input-range", help="Override a float input's range."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images."),
):
    """Top-1 / top-5 accuracy on a labelled folder."""
    from edgenet.evaluate import evaluate_folder
    from edgenet.pipeline import open_model

    if fmt not in ("table", "json"):
        raise UsageError(f"unknown --format {fmt!r}; choose table or json")
    opened = open_model(model, labels_file=labels, threads=threads or default_threads(), delegate=delegate,
                        resize=resize, input_range=_parse_range(input_range), top_k=5)
    for message in opened.warnings:
        warn(message)
    report = evaluate_folder(folder, opened.classifier, limit=limit)
    if fmt == "json":
        print(json.dumps(report))
    else:
        say(f"{report['model']}: top-1 {report['top1'] * 100:.2f}%  top-5 {report['top5'] * 100:.2f}%  "
            f"({report['images']} images, {report['errors']} errors, resize {resize})")
    raise typer.Exit(1 if report["errors"] else 0)


# -- models -----------------------------------------------------------------------------------------

def _model_rows() -> list[dict]:
    from edgenet import zoo

    return [spec.to_dict(present=zoo.is_present(spec.artifact),
                         edgetpu_present=zoo.is_present(spec.edgetpu) if spec.edgetpu else None)
            for spec in zoo.catalog().values()]


@models_app.command("list")
@handles_errors
def models_list(fmt: str = typer.Option("table", "--format", "-f", help="table | json.")):
    """Every model in the zoo, and whether it is in the local cache."""
    from edgenet import zoo

    rows = _model_rows()
    if fmt == "json":
        print(json.dumps(rows, indent=1))
        return
    if fmt != "table":
        raise UsageError(f"unknown --format {fmt!r}; choose table or json")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgenet model zoo (cache: {zoo.home() / 'models'})")
    for column in ("name", "family", "input", "quant", "MB", "present", "Edge TPU twin", "notes"):
        table.add_column(column)
    default = zoo.default_model()
    for row in rows:
        twin = "-" if row["edgetpu"] is None else ("present" if row["edgetpu_present"] else "available")
        size = f"{row['size'] / 1e6:.1f}" if row["size"] else "?"
        name = row["name"] + (" (default)" if row["name"] == default else "")
        note = "latency only (random weights)" if row["latency_only"] else row["notes"].split(".")[0]
        table.add_row(name, row["family"], f"{row['input'][0]}", row["quant"], size,
                      "yes" if row["present"] else "no", twin, note)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@models_app.command("pull")
@handles_errors
def models_pull(
    names: list[str] = typer.Argument(None, help="Zoo names (default: the default model)."),
    edgetpu: bool = typer.Option(False, "--edgetpu", help="Also pull the Edge TPU twins."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
):
    """Download, verify and cache models (the mirror first, then upstream)."""
    from edgenet import zoo

    for name in names or [zoo.default_model()]:
        spec = zoo.get_spec(name)
        artifacts = [spec.artifact] + ([spec.edgetpu] if edgetpu and spec.edgetpu else [])
        for artifact in artifacts:
            path = zoo.pull(artifact, force=force)
            say(f"{name}: {path}")


@models_app.command("path")
@handles_errors
def models_path(name: str = typer.Argument(None), edgetpu: bool = typer.Option(False, "--edgetpu")):
    """Print the local path of a model (pulling it if needed)."""
    from edgenet import zoo

    print(zoo.resolve(name, edgetpu=edgetpu).path)


@models_app.command("verify")
@handles_errors
def models_verify(
    names: list[str] = typer.Argument(None, help="Zoo names (default: every cached model)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json."),
):
    """Check cached models against the catalog's checksums. Exit 3 if any differ."""
    from edgenet import zoo

    specs = [zoo.get_spec(n) for n in names] if names else list(zoo.catalog().values())
    results = []
    for spec in specs:
        for artifact in filter(None, (spec.artifact, spec.edgetpu)):
            if not names and not zoo.cache_path(artifact).exists():
                continue
            problem = zoo.verify(artifact)
            results.append({"name": spec.name, "file": artifact.file, "ok": problem is None,
                            "problem": problem})
    if fmt == "json":
        print(json.dumps(results, indent=1))
    else:
        for row in results:
            say(f"{'ok  ' if row['ok'] else 'FAIL'} {row['name']}: {row['file']}"
                + (f" ({row['problem']})" if row["problem"] else ""), "" if row["ok"] else "red")
        if not results:
            say("no cached models to verify (edgenet models pull NAME)")
    if any(not row["ok"] for row in results):
        raise typer.Exit(3)


@models_app.command("info")
@handles_errors
def models_info(
    name: str = typer.Argument(None, help="Zoo name or .tflite path (default: the default model)."),
    threads: Optional[int] = ThreadsOption,
    fmt: str = typer.Option("table", "--format", "-f", help="table | json."),
):
    """What a model is: catalog entry, tensors, quantization, ops and delegate partitions."""
    from edgenet import zoo
    from edgenet.runtime import Engine, inspect_model_file

    resolved = zoo.resolve(name)
    info: dict = resolved.spec.to_dict(present=True) if resolved.spec else {"name": resolved.name}
    info["path"] = str(resolved.path)
    file_info = inspect_model_file(resolved.path)
    info["bytes"] = file_info.size
    engine = Engine(resolved.path, threads=threads or 1)
    info.update({
        "backend": f"{engine.backend.name} {engine.backend.version}",
        "delegate": engine.delegate,
        "partitions": engine.partitions,
        "input_tensor": {"shape": [1, engine.input.height, engine.input.width, engine.input.channels],
                         "dtype": engine.input.dtype, "scale": engine.input.scale,
                         "zero_point": engine.input.zero_point, "value_range": list(engine.input.value_range),
                         "range_from": engine.input.range_source},
        "output_tensor": {"classes": engine.output.classes, "dtype": engine.output.dtype,
                          "scale": engine.output.scale, "zero_point": engine.output.zero_point,
                          "scores": "probabilities" if engine.output.probabilities else "logits (softmax applied)"},
        "ops": engine.op_counts(),
    })
    if fmt == "json":
        print(json.dumps(info, indent=1))
        return
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"{key:>14}: {value}")


@app.command(hidden=True)
@handles_errors
def samples():
    """Print the folder of sample photos, pulling them (google-coral/test_data) if needed."""
    from edgenet import zoo

    print(zoo.sample_images())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
