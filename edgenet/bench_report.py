"""Bench reporting: the CSV layout, the table for people with published figures beside ours, the fastest
thread count, and the regression gate (--compare)."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgenet.bench import STAT_KEYS
from edgenet.choices import BenchFormat
from edgenet.errors import UsageError

# host conditions flattened into the CSV (throttled is a dict in the record: its raw value goes in the CSV)
HOST_FIELDS = (
    "machine",
    "cpu_model",
    "board",
    "cpu_count",
    "cores_usable",
    "python",
    "governor",
    "soc_temp_c_before",
    "soc_temp_c_after",
    "edgetpu_temp_c",
    "loadavg_1m",
)
CSV_FIELDS = [
    "model",
    "file",
    "backend",
    "backend_version",
    "delegate",
    "delegate_reason",
    "threads",
    "mode",
    "runs",
    "warmup_runs",
    "init_ms",
    "first_ms",
    "warmup_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "fps",
    "peak_rss_mb",
    "seconds",
    "input",
    "partitions",
    "latency_only",
    "decode_p50_ms",
    "preprocess_p50_ms",
    "inference_p50_ms",
    "postprocess_p50_ms",
    *HOST_FIELDS,
    "throttled",
    "time",
]


def csv_row(record: dict) -> dict:
    """A bench record (to_dict) flattened to CSV_FIELDS."""
    row = {key: record[key] for key in CSV_FIELDS if key in record and not isinstance(record[key], dict)}
    for key in STAT_KEYS:
        row[f"{key}_ms"] = record["latency_ms"].get(key)
    for stage in ("decode", "preprocess", "inference", "postprocess"):
        row[f"{stage}_p50_ms"] = ((record.get("stages") or {}).get(stage) or {}).get("p50", "")
    host = record.get("host") or {}
    for key in HOST_FIELDS:
        row[key] = host.get(key)
    throttled = host.get("throttled")
    row["throttled"] = throttled.get("raw") if isinstance(throttled, dict) else throttled
    return {key: ("" if row.get(key) is None else row.get(key)) for key in CSV_FIELDS}


def published_data() -> dict:
    from edgenet.data_files import read_text

    return json.loads(read_text("published.json"))


def published_for(model: str, data: dict | None = None) -> list[dict]:
    """Published figures that apply to this zoo model, each with its source's title and URL."""
    data = data or published_data()
    found = []
    for figure in data["figures"]:
        if model in figure["models"]:
            source = data["sources"][figure["source"]]
            found.append({**figure, "source_title": source["title"], "url": source["url"]})
    return found


def published_label(figure: dict) -> str:
    if figure["metric"] == "top1":
        return f"top-1 {figure['value']:g}% [{figure['source']}]"
    return f"{figure['value']:g} ms {figure['where']} [{figure['source']}]"


def record_sink(fmt: BenchFormat, output: str | None):
    """json (one array at the end), jsonl (a line per record, flushed) or csv (header, a row per record), to
    stdout or written to `output` (replaced, not appended to)."""
    from edgenet.sinks.records import CsvSink, JsonArraySink, JsonlSink, Output

    if output:
        try:
            with open(output, "w"):
                pass  # bench writes a fresh file
        except OSError as exc:
            raise UsageError(f"cannot write --output {output}: {exc.strerror}") from None
    target = Output(output)
    if fmt == BenchFormat.jsonl:
        return JsonlSink(target)
    if fmt == BenchFormat.csv:
        return CsvSink(target, fields=CSV_FIELDS, row=csv_row)
    return JsonArraySink(target)


def format_for_output(fmt: BenchFormat, output: str | None) -> BenchFormat:
    """The data format of --output: --format itself, or (with --format table) the file's extension."""
    fmt = BenchFormat(fmt)
    if output is None or fmt != BenchFormat.table:
        return fmt
    extension = Path(output).suffix.lower().lstrip(".")
    if extension in ("json", "jsonl", "csv"):
        return BenchFormat(extension)
    raise UsageError(
        f"--output {output}: with --format table, name the file .csv, .json or .jsonl "
        "(or give --format csv|json|jsonl)"
    )


TABLE_COLUMNS = (
    "model",
    "delegate",
    "thr",
    "init",
    "first",
    "p50",
    "p90",
    "p99",
    "mean±std",
    "fps",
    "RSS MB",
)
TABLE_DROP_ORDER = ("mean±std", "first", "init", "RSS MB", "p99", "delegate")  # first out when narrow


def _ms(value) -> str:
    return "-" if value is None else (f"{value:.3f}" if value < 1 else f"{value:.2f}")


def table_rows(records: Sequence[dict]) -> list[dict]:
    rows = []
    for record in records:
        latency = record["latency_ms"]
        rows.append(
            {
                "model": record["model"] + (" (latency only)" if record.get("latency_only") else ""),
                "delegate": record["delegate"],
                "thr": str(record["threads"]),
                "init": _ms(record["init_ms"]),
                "first": _ms(record["first_ms"]),
                "p50": _ms(latency["p50"]),
                "p90": _ms(latency["p90"]),
                "p99": _ms(latency["p99"]),
                "mean±std": f"{_ms(latency['mean'])}±{_ms(latency['std'])}",
                "fps": f"{record['fps']:.1f}" if record["fps"] else "-",
                "RSS MB": f"{record['peak_rss_mb']:.0f}" if record["peak_rss_mb"] is not None else "-",
            }
        )
    return rows


def fitting_columns(rows: list[dict], width: int) -> list[str]:
    """Every column whole (numbers and names are never cut or split); the least useful go first when the
    terminal is too narrow for all of them."""
    columns = list(TABLE_COLUMNS)

    def needed(column: str) -> int:
        return max([len(column)] + [len(row[column]) for row in rows]) + 3

    for candidate in (None, *TABLE_DROP_ORDER):
        if candidate is not None:
            columns.remove(candidate)
        if sum(needed(c) for c in columns) + 1 <= width:
            break
    return columns


def host_line(record: dict) -> str:
    host = record["host"]
    temps = [str(host[key]) for key in ("soc_temp_c_before", "soc_temp_c_after") if host.get(key) is not None]
    throttled = host.get("throttled")
    return (
        f"host: {host.get('board') or host.get('machine')}, {host.get('cpu_model')}, "
        f"{host.get('cores_usable')}/{host.get('cpu_count')} cores, Python {host.get('python')}, "
        f"governor {host.get('governor') or 'n/a'}, "
        f"SoC {' -> '.join(temps) + ' C' if temps else 'temperature n/a'}"
        + (f", throttled {throttled['raw']} {' '.join(throttled['flags'])}" if throttled else "")
        + (f", Edge TPU {host['edgetpu_temp_c']} C" if host.get("edgetpu_temp_c") is not None else "")
        + f", load {host.get('loadavg_1m')}; {record['backend']} {record['backend_version']}"
    )


def published_lines(records: Sequence[dict], e2e: bool) -> list[str]:
    """Published figures for the models measured, then their sources. Latency figures are invoke only:
    beside an end-to-end bench they are not the same measure, and the line says so."""
    data = published_data()
    lines = []
    for model in dict.fromkeys(record["model"] for record in records):
        figures = published_for(model, data)
        if figures:
            lines.append(f"published for {model}: " + "; ".join(published_label(f) for f in figures))
    if lines and e2e:
        lines.append("(published latencies are invoke only; the table above is decode to top-k)")
    used = sorted({f["source"] for record in records for f in published_for(record["model"], data)})
    for key in used:
        source = data["sources"][key]
        lines.append(f"[{key}] {source['title']}: {source['url']} ({source['method']})")
    return lines


def render_table(records: Sequence[dict], stream=None) -> None:
    """Our figures for people (stderr), then the published ones for the same models, with their sources."""
    from rich.console import Console
    from rich.table import Table

    from edgenet.console import terminal_width

    stream = stream or sys.stderr
    width = terminal_width(stream) if stream.isatty() else 200
    console = Console(file=stream, highlight=False, markup=False, width=width, soft_wrap=not stream.isatty())
    e2e = any(record["mode"] == "e2e" for record in records)
    rows = table_rows(records)
    columns = fitting_columns(rows, width)
    what = "per frame: decode+preprocess+invoke+postprocess" if e2e else "invoke only"
    table = Table(title=f"edgenet bench ({what}, ms)")
    for column in columns:
        text = column in ("model", "delegate")
        table.add_column(column, justify="left" if text else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(row[column] for column in columns))
    console.print(table)
    for record in records:
        if record.get("stages"):
            parts = [
                f"{stage} {values['p50']:.2f} ms ({values['share'] * 100:.0f}%)"
                for stage, values in record["stages"].items()
                if stage != "total"
            ]
            console.print(
                f"{record['model']} t{record['threads']} stages p50 (share of mean): " + ", ".join(parts)
            )
    if records:
        console.print(host_line(records[0]))
        for line in published_lines(records, e2e):
            console.print(line)


def fastest_threads(records: Iterable[dict]) -> dict[tuple[str, str, str], tuple[int, float]]:
    """(model, delegate, mode) -> (threads, p50) of the fastest thread count, where several were measured."""
    groups: dict[tuple[str, str, str], list[tuple[float, int]]] = {}
    for record in records:
        groups.setdefault((record["model"], record["delegate"], record["mode"]), []).append(
            (record["latency_ms"]["p50"], record["threads"])
        )
    return {key: (min(values)[1], min(values)[0]) for key, values in groups.items() if len(values) > 1}


def read_reference(path: str) -> list[dict]:
    """Rows of a CSV written earlier by `edgenet bench --format csv`."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise UsageError(
            f"--compare {path}: no such file; write one first with edgenet bench --format csv --output {path}"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--compare {path}: cannot read it as CSV ({exc})") from None
    needed = {"model", "delegate", "threads", "p50_ms"}
    if not rows or not needed <= set(rows[0]):
        raise UsageError(
            f"--compare {path}: not a bench CSV (needs the columns "
            f"{', '.join(sorted(needed))}); write one with edgenet bench --format csv"
        )
    return rows


def _key(row: dict) -> tuple[str, str, int, str]:
    # files written before delegate_reason existed said "xnnpack (no Edge TPU found)": the kind is the key
    delegate = str(row["delegate"]).split(" (")[0]
    return (str(row["model"]), delegate, int(row["threads"]), str(row.get("mode") or "invoke"))


def compare(
    records: Sequence[dict], reference: Sequence[dict], tolerance: float
) -> tuple[list[dict], list[dict]]:
    """(compared rows, regressions): a row regresses when its p50 > reference p50 x (1 + tolerance)."""
    by_key = {}
    for row in reference:
        try:
            by_key[_key(row)] = float(row["p50_ms"])
        except (TypeError, ValueError):
            continue
    compared, regressed = [], []
    for record in records:
        key = _key(record)
        if key not in by_key:
            continue
        reference_p50 = by_key[key]
        p50 = record["latency_ms"]["p50"]
        row = {
            "model": key[0],
            "delegate": key[1],
            "threads": key[2],
            "mode": key[3],
            "reference_p50_ms": reference_p50,
            "p50_ms": p50,
            "ratio": round(p50 / reference_p50, 3) if reference_p50 > 0 else math.inf,
        }
        compared.append(row)
        if p50 > reference_p50 * (1.0 + tolerance):
            regressed.append(row)
    return compared, regressed
