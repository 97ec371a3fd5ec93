"""The table people read at the end of an image run (scripts use jsonl/csv). Everything in it is text, never
markup; it fits the terminal: sources shown relative to their common folder, numbers never split, and the
least useful columns dropped before the others are squeezed."""

from __future__ import annotations

import io
import os

from edgenet.console import printable, terminal_width
from edgenet.sinks.records import CollectingSink

COLUMNS = ("source", "frame", "top-1", "score", "top-k", "inference ms", "total ms")
DETECT_COLUMNS = ("source", "frame", "found", "inference ms", "total ms")
NUMERIC = {"frame", "score", "inference ms", "total ms"}
DROP_ORDER = ("top-k", "frame", "total ms")  # dropped in this order when the terminal is narrow


def short_label(label: str) -> str:
    """The first of a label's synonyms, for people ("tabby, tabby cat" -> "tabby"); records keep them all."""
    return label.split(",")[0]


def relative_sources(sources: list[str]) -> list[str]:
    """Paths relative to their common folder (the file name alone for one file); other sources as they are."""
    paths = [s for s in sources if not s.startswith("camera:")]
    if not paths:
        return sources
    try:
        common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    except ValueError:
        return sources
    return [s if s.startswith("camera:") else os.path.relpath(os.path.abspath(s), common) for s in sources]


def _found(detection: dict) -> str:
    """`bird 0.83 (Red-winged Blackbird 0.86)`: a detection, and what the second model named it."""
    text = f"{short_label(detection['label'])} {detection['score']:.2f}"
    top = (detection.get("classification") or {}).get("top_k") or []
    return text + (f" ({short_label(top[0]['label'])} {top[0]['score']:.2f})" if top else "")


def _region(region: dict) -> str:
    """`door: open 0.93` (classify) or `driveway: car` (detect)."""
    top = region.get("top_k")
    if top is not None:
        return f"{region['region']}: " + (
            f"{short_label(top[0]['label'])} {top[0]['score']:.2f}" if top else "-"
        )
    return f"{region['region']}: " + (", ".join(region.get("labels") or []) or "none")


def rows(records: list[dict]) -> list[dict]:
    names = relative_sources([str(r.get("source", "")) for r in records])
    table = []
    for name, record in zip(names, records, strict=True):
        row = {"source": name, "frame": str(record.get("frame", ""))}
        if "error" in record:
            row["top-1"] = row["found"] = f"error: {record['error']}"
            table.append(row)
            continue
        latency = record.get("latency_ms") or {}
        if "event" in record:
            row["found"] = row["top-1"] = f"{record['region']}: {record['from'] or '-'} -> {record['to']}"
            table.append(row)
            continue
        if "regions" in record:
            row["found"] = "; ".join(_region(region) for region in record["regions"]) or "-"
            row["inference ms"] = f"{latency.get('inference', 0):.2f}"
            row["total ms"] = f"{latency.get('total', 0):.2f}"
            table.append(row)
            continue
        if "detections" in record:
            row["found"] = ", ".join(_found(d) for d in record["detections"]) or "-"
            row["inference ms"] = f"{latency.get('inference', 0):.2f}"
            row["total ms"] = f"{latency.get('total', 0):.2f}"
            table.append(row)
            continue
        top = record.get("top_k") or []
        first = top[0] if top else {"label": "-", "score": 0.0}
        row.update(
            {
                "top-1": short_label(first["label"]),
                "score": f"{first['score']:.3f}",
                "top-k": ", ".join(f"{short_label(p['label'])} {p['score']:.2f}" for p in top[1:]),
                "inference ms": f"{latency.get('inference', 0):.2f}",
                "total ms": f"{latency.get('total', 0):.2f}",
            }
        )
        table.append(row)
    return table


def fitting_columns(table: list[dict], width: int) -> list[str]:
    """The columns to show in `width` characters: each needs its widest cell (numbers, names) or at least 12
    characters (text that can wrap); columns are dropped in DROP_ORDER until the rest fit."""
    detecting = any("found" in row and not row["found"].startswith("error: ") for row in table)
    columns = list(DETECT_COLUMNS if detecting else COLUMNS)

    def needed(column: str) -> int:
        widest = max([len(column)] + [len(row.get(column, "")) for row in table])
        return widest if column in NUMERIC or column == "score" else min(widest, 24)

    for candidate in (None, *DROP_ORDER):
        if candidate is not None:
            if candidate not in columns:
                continue
            columns.remove(candidate)
        if sum(needed(c) + 3 for c in columns) + 1 <= width:
            break
    return columns


class TableSink(CollectingSink):
    def close(self) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        terminal = self.output.isatty()
        buffer = io.StringIO()
        try:
            width = terminal_width(self.output.stream) if terminal else 160
            console = Console(file=buffer, width=width, highlight=False, force_terminal=terminal)
            table_rows = rows(self.records)
            columns = fitting_columns(table_rows, console.width)
            table = Table(show_lines=False)
            for column in columns:
                numeric = column in NUMERIC
                table.add_column(
                    column,
                    justify="right" if numeric else "left",
                    no_wrap=numeric,
                    overflow="fold",
                    min_width=len(column) if numeric else None,
                )
            for row in table_rows:
                cells = [Text(printable(row.get(column, ""))) for column in columns]
                for column in ("top-1", "found"):
                    if column in columns and row.get(column, "").startswith("error: "):
                        cells[columns.index(column)].stylize("red")
                table.add_row(*cells)
            console.print(table)
            self.output.write(buffer.getvalue())
        finally:
            super().close()
