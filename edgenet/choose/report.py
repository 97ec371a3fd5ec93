"""What `edgenet choose` reports: one document (the JSON of --format json), and its text for people: a table
of the models, the chart, the choice and the command to use it."""

from __future__ import annotations

import math
import string

from edgenet.choices import Delegate, Task
from edgenet.choose.chart import ChartPoint, text_chart
from edgenet.choose.frontier import Point, choose_within, fastest, pareto_frontier

LATENCY_MEANS = (
    "p50 of the end-to-end time per frame (decode, preprocess, invoke, postprocess, one after the other) "
    "over the photos, on this machine"
)


def command_for(task: Task, model: str, threads: int, delegate: Delegate) -> list[str]:
    """The command that runs `model` as it was measured (the input is the user's: photos, --camera 0...)."""
    command = ["edgenet", task.value, "--model", model, "--threads", str(threads)]
    if delegate != Delegate.auto:
        command += ["--delegate", delegate.value]
    return command


def _keys(count: int) -> list[str]:
    letters = string.ascii_uppercase
    return [letters[i] if i < len(letters) else str(i - len(letters)) for i in range(count)]


def build_document(
    *,
    task: Task,
    fps: float | None,
    budget_ms: float | None,
    measured: list[dict],
    not_measured: list[dict],
    failed: list[dict],
    settings,
    cache_key: dict,
    cache_path: str,
    accuracy_from: str,
) -> dict:
    """The choose report. `measured`: per model its cache entry plus "accuracy" (or None) and "from"."""
    points = [
        Point(m["model"], m["latency_ms"]["p50"], m["accuracy"]["value"] if m.get("accuracy") else None)
        for m in measured
    ]
    frontier = {p.model for p in pareto_frontier(points)}
    choice = choose_within(points, budget_ms) if budget_ms else None
    ordered = sorted(measured, key=lambda m: (m["latency_ms"]["p50"], m["model"]))
    keyed = [m for m in ordered if m.get("accuracy")]
    keys = dict(zip((m["model"] for m in keyed), _keys(len(keyed)), strict=True))
    models = []
    for entry in ordered:
        name, p50 = entry["model"], entry["latency_ms"]["p50"]
        key = keys.get(name)
        models.append(
            {
                "model": name,
                "key": key if key is None or name in frontier else key.lower(),
                "latency_ms": {k: entry["latency_ms"].get(k) for k in ("p50", "p90", "mean", "min", "max")},
                "fps": round(1000.0 / p50, 2) if p50 else None,
                "stages": entry.get("stages"),
                "delegate": entry.get("delegate"),
                "delegate_reason": entry.get("delegate_reason"),
                "threads": entry.get("threads"),
                "runs": entry.get("runs"),
                "measured": entry.get("from", "now"),
                "time": entry.get("time"),
                "accuracy": entry.get("accuracy"),
                "accuracy_note": entry.get("accuracy_note"),
                "frontier": name in frontier,
                "within_budget": (p50 <= budget_ms) if budget_ms else None,
            }
        )
    fastest_point = fastest(points)
    return {
        "task": task.value,
        "fps": fps,
        "budget_ms": round(budget_ms, 3) if budget_ms else None,
        "latency": LATENCY_MEANS,
        "accuracy": accuracy_from,
        "threads": settings.threads,
        "delegate": settings.delegate.value,
        "host": cache_key,
        "cache": cache_path,
        "models": models,
        "frontier": [p.model for p in pareto_frontier(points)],
        "not_measured": not_measured,
        "failed": failed,
        "choice": _summary(choice, task, settings) if choice else None,
        "fastest": _summary(fastest_point, task, settings) if fastest_point else None,
    }


def _summary(point: Point, task: Task, settings) -> dict:
    return {
        "model": point.model,
        "latency_ms": point.latency_ms,
        "accuracy": point.accuracy,
        "command": command_for(task, point.model, settings.threads, settings.delegate),
    }


# -- text for people ---------------------------------------------------------------------------------


def _number(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table_lines(document: dict, accuracy_name: str) -> list[str]:
    """One line per measured model, fastest first; 78 characters at most."""
    header = f"   {'model':<22} {'p50 ms':>7} {'p90 ms':>7} {'fps':>6} {accuracy_name:>6}  from"
    lines = [header]
    for model in document["models"]:
        accuracy = model["accuracy"]
        source = (accuracy["source"] if accuracy else model["accuracy_note"] or "unknown")[:21]
        mark = "*" if model["frontier"] else " "
        if document["choice"] and document["choice"]["model"] == model["model"]:
            mark = "<"
        latency = model["latency_ms"]
        lines.append(
            f"{mark}{model['key'] or ' '} {model['model']:<22} {_number(latency['p50'], 2):>7} "
            f"{_number(latency['p90'], 2):>7} {_number(model['fps'], 0):>6} "
            f"{_number(accuracy['value'] if accuracy else None):>6}  {source}"
        )
    return lines


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def chart_points(document: dict) -> list[ChartPoint]:
    chosen = document["choice"]["model"] if document["choice"] else None
    return [
        ChartPoint(
            key=m["key"],
            model=m["model"],
            latency_ms=m["latency_ms"]["p50"],
            accuracy=m["accuracy"]["value"],
            frontier=m["frontier"],
            chosen=m["model"] == chosen,
        )
        for m in document["models"]
        if m["accuracy"] and m["key"]
    ]


def text_report(document: dict, width: int = 80) -> list[str]:
    """The table, the chart, what was not measured, and the choice with its command."""
    task = Task(document["task"])
    accuracy_name = "top-1" if task == Task.classify else "mAP"
    lines = table_lines(document, accuracy_name)
    lines += _wrap(
        f"(* on the frontier, < the choice. Latency: {LATENCY_MEANS}. Accuracy: {document['accuracy']}.)",
        width,
    )
    chart = text_chart(
        chart_points(document), document["budget_ms"], width=width, accuracy_name=accuracy_name
    )
    if chart:
        lines += [""] + chart
    for missing in document["not_measured"]:
        lines.append(f"not measured: {missing['model']} ({missing['reason']}): {missing['pull']}")
    for failure in document["failed"]:
        lines.append(f"failed: {failure['model']}: {failure['error']}")
    lines += [""] + choice_lines(document, accuracy_name, width)
    return lines


def choice_lines(document: dict, accuracy_name: str, width: int = 80) -> list[str]:
    budget, choice = document["budget_ms"], document["choice"]
    if budget is None:
        return ["give --fps N or --budget-ms MS to name the most accurate model that keeps up"]
    wanted = f"{document['fps']:g} fps = {budget:.1f} ms" if document["fps"] else f"{budget:g} ms"
    if choice is None:
        quickest = document["fastest"]
        if quickest is None:
            return [f"no model was measured, so none can be named for {wanted}"]
        known = any(m["accuracy"] for m in document["models"])
        why = (
            "no model with a known accuracy is within"
            if known
            else "no accuracy is known to rank models within"
        )
        return _wrap(
            f"{why} {wanted} here; the fastest is {quickest['model']} at {quickest['latency_ms']:.1f} ms "
            "(fewer photos per second, --threads, or an Edge TPU would help)",
            width,
        )
    frames = 1000.0 / choice["latency_ms"]
    sentence = (
        f"choice for {wanted}: {choice['model']}, {accuracy_name} {choice['accuracy']:.1f}%, "
        f"{choice['latency_ms']:.1f} ms here ({frames:.0f} fps)"
    )
    use = "use it: " + " ".join(choice["command"]) + (" --camera 0" if document["fps"] else " PHOTOS...")
    return [*_wrap(sentence, width), use]  # the command on one line, to copy
