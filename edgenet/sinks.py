"""Writers for per-frame records: jsonl, csv (data, to stdout or a file) and table (for people).

Each record is written with a single write() and flushed, so a reader (or a kill -9) never sees half a line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from typing import IO

from edgenet.errors import DeviceError, UsageError

FORMATS = ("table", "jsonl", "csv")
CSV_FIELDS = [
    "source",
    "frame",
    "model",
    "delegate",
    "index",
    "label",
    "score",
    "top_k",
    "decode_ms",
    "preprocess_ms",
    "inference_ms",
    "postprocess_ms",
    "total_ms",
    "time",
    "error",
]
# streams (--camera, --video) add the capture wait, when the frame arrived and the frames dropped before it
STREAM_CSV_FIELDS = CSV_FIELDS[:8] + ["capture_ms"] + CSV_FIELDS[8:14] + ["captured", "dropped", "error"]


class Sink:
    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, record: dict) -> None:
        raise NotImplementedError

    def _put(self, text: str) -> None:
        """One write, flushed. A closed pipe is the caller's business; a full disk is a device problem."""
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            name = getattr(self.stream, "name", "the output")
            raise DeviceError(
                f"cannot write records to {name}: {exc.strerror or exc}; free space or "
                "choose another --output (the records before this one are complete)"
            ) from None

    def close(self) -> None:
        # a failed write was reported where it happened; closing must not raise it a second time
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()
        if self.stream not in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
                os.fsync(self.stream.fileno())  # records survive a power cut, not only a killed process
            with contextlib.suppress(OSError):
                self.stream.close()


class JsonlSink(Sink):
    def write(self, record: dict) -> None:
        self._put(json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n")


def csv_row(record: dict) -> dict:
    top = record.get("top_k") or []
    latency = record.get("latency_ms") or {}
    first = top[0] if top else {}
    return {
        "source": record.get("source"),
        "frame": record.get("frame"),
        "model": record.get("model"),
        "delegate": record.get("delegate", ""),
        "index": first.get("index", ""),
        "label": first.get("label", ""),
        "score": first.get("score", ""),
        "top_k": ";".join(f"{p['index']}:{p['label']}:{p['score']}" for p in top),
        "decode_ms": latency.get("decode", ""),
        "preprocess_ms": latency.get("preprocess", ""),
        "inference_ms": latency.get("inference", ""),
        "postprocess_ms": latency.get("postprocess", ""),
        "total_ms": latency.get("total", ""),
        "time": record.get("time", ""),
        "error": record.get("error", ""),
    }


def stream_csv_row(record: dict) -> dict:
    row = csv_row(record)
    row["capture_ms"] = (record.get("latency_ms") or {}).get("capture", "")
    row["captured"] = record.get("captured", "")
    row["dropped"] = record.get("dropped", "")
    return row


class CsvSink(Sink):
    """A header, then one row per record. `fields` and `row` flatten another kind of record (bench's)."""

    def __init__(self, stream: IO[str], fields: list[str] = CSV_FIELDS, row=csv_row):
        super().__init__(stream)
        self._row = row
        self._buffer = io.StringIO()
        self._writer = csv.DictWriter(self._buffer, fieldnames=fields, lineterminator="\n")
        if not _appending_to_existing(stream):  # one header per file, however many runs append to it
            self._writer.writeheader()
            self._emit()

    def _emit(self) -> None:
        self._put(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()

    def write(self, record: dict) -> None:
        self._writer.writerow(self._row(record))
        self._emit()


class CollectingSink(Sink):
    """Keeps the records and writes them all when it closes."""

    def __init__(self, stream: IO[str]):
        super().__init__(stream)
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self.records.append(record)


class JsonArraySink(CollectingSink):
    """One JSON array, written when the sink closes (bench --format json)."""

    def close(self) -> None:
        self._put(json.dumps(self.records, indent=1) + "\n")
        super().close()


def _ends_with_newline(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except OSError:
        return True


def _appending_to_existing(stream: IO[str]) -> bool:
    try:
        return stream not in (sys.stdout, sys.stderr) and os.fstat(stream.fileno()).st_size > 0
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


def _short(label: str) -> str:
    """The first of a label's synonyms, for people ("tabby, tabby cat" -> "tabby"); records keep them all."""
    return label.split(",")[0]


class TableSink(CollectingSink):
    """One rich table at the end (people read it; scripts use jsonl/csv)."""

    def close(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for column in ("source", "frame", "top-1", "score", "top-k", "inference ms", "total ms"):
            table.add_column(
                column, justify="right" if column in ("frame", "score") or "ms" in column else "left"
            )
        for record in self.records:
            if "error" in record:
                table.add_row(
                    record["source"],
                    str(record["frame"]),
                    f"[red]error: {record['error']}[/red]",
                    "",
                    "",
                    "",
                    "",
                )
                continue
            top = record["top_k"]
            first = top[0] if top else {"label": "-", "score": 0.0}
            table.add_row(
                record["source"],
                str(record["frame"]),
                _short(first["label"]),
                f"{first['score']:.3f}",
                ", ".join(f"{_short(p['label'])} {p['score']:.2f}" for p in top[1:]),
                f"{record['latency_ms']['inference']:.2f}",
                f"{record['latency_ms']['total']:.2f}",
            )
        console = Console(file=self.stream, width=None if self.stream.isatty() else 160)
        console.print(table)
        super().close()


def open_sink(fmt: str, output: str | None, stream_records: bool = False) -> Sink:
    """`output` None: jsonl/csv to stdout, table to stderr. With a file: appended, line by line.
    `stream_records`: CSV gets the stream columns (capture_ms, captured, dropped)."""
    if output:
        try:
            stream = open(output, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by Sink.close
        except OSError as exc:
            raise UsageError(f"cannot open --output {output}: {exc.strerror}") from None
        if not _ends_with_newline(output):
            stream.write("\n")  # a half line left by an earlier crash or full disk stays alone on its line
    else:
        stream = sys.stderr if fmt == "table" else sys.stdout
    if fmt == "jsonl":
        return JsonlSink(stream)
    if fmt == "csv":
        if stream_records:
            return CsvSink(stream, STREAM_CSV_FIELDS, stream_csv_row)
        return CsvSink(stream)
    return TableSink(stream)


class FanOut(Sink):
    """The data sink, then the optional reporters: Prometheus textfile and MQTT (edgenet.metrics/.mqtt).

    The data sink is written first: a record reaches the metrics and the broker only once it is on disk.
    """

    def __init__(self, sink: Sink, *, prom=None, mqtt=None):
        super().__init__(sink.stream)
        self.sink = sink
        self.prom = prom
        self.mqtt = mqtt

    def write(self, record: dict) -> None:
        self.sink.write(record)
        if self.prom is not None:
            self.prom.observe(record)
        if self.mqtt is not None:
            self.mqtt.publish(record)

    def close(self) -> None:
        try:
            self.sink.close()
        finally:
            if self.prom is not None:
                self.prom.write()
            if self.mqtt is not None:
                self.mqtt.close()
