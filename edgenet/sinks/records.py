"""The data writers: JSON Lines, CSV (to stdout or appended to --output) and a table (for people).

Each record is written with a single write and flushed, so a reader (or a kill -9) never sees half a line.
A write that fails half-way (a full disk) is undone: the file is cut back to its last whole record, and the
run ends with a DeviceError (exit 4). File names that are not UTF-8 stay valid in the output: their
undecodable bytes are written as \\udcXX escapes (JSON decoders give the bytes back).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import sys

from edgenet.errors import DeviceError, UsageError
from edgenet.sinks import Sink

# one header for every classify run, images or streams (a file that several runs append to stays aligned);
# streams (--camera, --video) fill the capture wait, when the frame arrived and the frames dropped before it
CSV_FIELDS = [
    "source",
    "frame",
    "model",
    "delegate",
    "delegate_reason",
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
    "capture_ms",
    "captured",
    "dropped",
    "error",
    "saved",
]


def safe_text(text: str) -> str:
    """Lone surrogates (the undecodable bytes of a file name) as \\udcXX, so the text encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Output:
    """Where data lines go: stdout, stderr, or a file appended to (created if needed)."""

    def __init__(self, path: str | None = None, stream=None):
        self.path = path
        self._fd: int | None = None
        self.stream = stream
        self._regular = False
        if path:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UsageError(
                    f"cannot open --output {path}: {exc.strerror}; give a file in a writable folder"
                ) from None
            info = os.fstat(self._fd)
            self._regular = stat.S_ISREG(info.st_mode)  # a FIFO, /dev/stdout or a tty: no seeking back
            self.existing = info.st_size if self._regular else 0
            if self.existing and not _ends_with_newline(path):
                self.write("\n")  # a half line left by an earlier crash stays alone on its line
        else:
            self.stream = stream or sys.stdout
            self.existing = 0
            if self.stream is None:  # started with stdout (or stderr) closed: `edgenet classify ... >&-`
                raise UsageError("the output stream is closed: give --output FILE, or keep stdout open")

    @property
    def name(self) -> str:
        return self.path or getattr(self.stream, "name", "the output")

    def isatty(self) -> bool:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            return self._fd is None and self.stream.isatty()
        return False

    def write(self, text: str) -> None:
        """One write, flushed. A closed pipe is the caller's business; a full disk is a device problem."""
        data = safe_text(text)
        try:
            if self._fd is None:
                self.stream.write(data)
                self.stream.flush()
            else:
                self._write_file(data.encode("utf-8"))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise DeviceError(
                f"cannot write records to {self.name}: {exc.strerror or exc}; free space or choose another "
                "--output (the records before this one are complete)"
            ) from None

    def _write_file(self, data: bytes) -> None:
        before = os.lseek(self._fd, 0, os.SEEK_END) if self._regular else None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            if before is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, before)  # no half record left behind
            raise

    def close(self) -> None:
        if self._fd is None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.flush()
            return
        with contextlib.suppress(OSError):
            os.fsync(self._fd)  # records survive a power cut, not only a killed process
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def _csv_header(path: str) -> list[str] | None:
    """The column names on a file's first line (None when it cannot be read or is empty)."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline(1 << 16).decode("utf-8", "replace")
    except OSError:
        return None
    names = next(csv.reader([line]), None)
    return [name.strip() for name in names] if names else None


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


class RecordSink(Sink):
    """A record writer (one line per record) as a run's sink."""

    on_output = True

    def __init__(self, output: Output):
        self.output = output

    def write(self, result) -> None:
        self.write_record(result.record)

    def write_record(self, record: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.output.close()


class JsonlSink(RecordSink):
    def write_record(self, record: dict) -> None:
        self.output.write(json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n")


def _ranked(top: list) -> str:
    """A top-k as one CSV cell: `index:label:score;...`."""
    return ";".join(f"{p['index']}:{p['label']}:{p['score']}" for p in top)


def _frame_columns(record: dict) -> dict:
    """The columns every CSV layout shares: where the frame came from, where it ran, its stage times (each
    layout's header keeps the stages it has: CsvSink ignores the others), and its outcome."""
    latency = record.get("latency_ms") or {}
    stages = ("decode", "preprocess", "inference", "classify", "postprocess", "total", "capture")
    return {
        "source": record.get("source"),
        "frame": record.get("frame"),
        "model": record.get("model"),
        "delegate": record.get("delegate", ""),
        "delegate_reason": record.get("delegate_reason", ""),
        **{f"{stage}_ms": latency.get(stage, "") for stage in stages},
        "time": record.get("time", ""),
        "captured": record.get("captured", ""),
        "dropped": record.get("dropped", ""),
        "error": record.get("error", ""),
        "saved": record.get("saved", ""),
    }


def csv_row(record: dict) -> dict:
    top = record.get("top_k") or []
    first = top[0] if top else {}
    return {
        **_frame_columns(record),
        "index": first.get("index", ""),
        "label": first.get("label", ""),
        "score": first.get("score", ""),
        "top_k": _ranked(top),
    }


DETECT_CSV_FIELDS = [
    "source",
    "frame",
    "model",
    "delegate",
    "delegate_reason",
    "detection",
    "index",
    "label",
    "score",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "classification",
    "decode_ms",
    "preprocess_ms",
    "inference_ms",
    "classify_ms",
    "postprocess_ms",
    "total_ms",
    "time",
    "capture_ms",
    "captured",
    "dropped",
    "error",
    "saved",
]


def detect_csv_rows(record: dict) -> list[dict]:
    """A detection record as CSV: one row per detection (`detection` its rank, best first), or one row with
    the detection columns empty for a frame with none, so that every frame has a row."""
    frame = _frame_columns(record)
    rows = []
    for rank, found in enumerate(record.get("detections") or []):
        top = (found.get("classification") or {}).get("top_k") or []
        rows.append(
            {
                **frame,
                "detection": rank,
                "index": found["index"],
                "label": found["label"],
                "score": found["score"],
                **found["box"],
                "classification": _ranked(top),
            }
        )
    return rows or [frame]


REGION_CSV_FIELDS = [
    "source",
    "frame",
    "model",
    "delegate",
    "delegate_reason",
    "region",
    "label",
    "score",
    "top_k",
    "event",
    "from",
    "to",
    "decode_ms",
    "preprocess_ms",
    "inference_ms",
    "postprocess_ms",
    "total_ms",
    "time",
    "capture_ms",
    "captured",
    "dropped",
    "error",
    "saved",
]


def region_csv_rows(record: dict) -> list[dict]:
    """A record with regions as CSV: a row per region (its top-1, or its labels joined by `,`), a region's
    confirmed change of state as a row with `event` state, and a failed frame as one row with its error."""
    if record.get("event"):
        keep = ("source", "frame", "model", "region", "event", "from", "to", "score", "time")
        return [{key: record.get(key) for key in keep}]
    frame = _frame_columns(record)
    rows = []
    for region in record.get("regions") or []:
        top = region.get("top_k")
        if top is not None:
            first = top[0] if top else {}
            label, score = first.get("label", ""), first.get("score", "")
            ranked = _ranked(top)
        else:
            label, score, ranked = ",".join(region.get("labels") or []), region.get("score", ""), ""
        rows.append({**frame, "region": region["region"], "label": label, "score": score, "top_k": ranked})
    return rows or [frame]


class CsvSink(RecordSink):
    """A header (once per file, however many runs append to it), then one row per record. `fields` and `row`
    flatten another kind of record (bench's).

    A file that already has a header gets rows in its own columns when we produce every one of them (a file
    begun by an earlier edgenet, whose layout had fewer columns: the new ones are left out, and said once);
    a header with a column we do not produce (another command, another layout) is refused (exit 2)."""

    def __init__(self, output: Output, fields: list[str] = CSV_FIELDS, row=csv_row):
        super().__init__(output)
        self._row = row
        self._buffer = io.StringIO()
        existing = _csv_header(output.path) if output.existing and output.path else None
        if existing and existing != list(fields):
            fields = self._existing_layout(output, existing, fields)
        self._writer = csv.DictWriter(
            self._buffer, fieldnames=fields, lineterminator="\n", restval="", extrasaction="ignore"
        )
        if not output.existing:
            self._writer.writeheader()
            self._emit()

    def _existing_layout(self, output: Output, existing: list[str], fields: list[str]) -> list[str]:
        unknown = [name for name in existing if name not in fields]
        if unknown or len(set(existing)) != len(existing):
            output.close()
            shown = ", ".join(unknown[:3]) or "repeated"
            raise UsageError(
                f"--output {output.path} holds CSV with other columns ({shown}: another command or layout): "
                "choose a new file for these records"
            )
        left_out = [name for name in fields if name not in existing]
        if left_out:
            from edgenet.console import warn

            warn(
                f"--output {output.path} has the columns of an earlier edgenet: {', '.join(left_out)} "
                "left out (start a new file to get them)"
            )
        return existing

    def _emit(self) -> None:
        self.output.write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()

    def write_record(self, record: dict) -> None:
        rows = self._row(record)
        self._writer.writerows(rows if isinstance(rows, list) else [rows])
        self._emit()  # a record's rows in one write


class CollectingSink(RecordSink):
    """Keeps the records and writes them all when it closes."""

    def __init__(self, output: Output):
        super().__init__(output)
        self.records: list[dict] = []

    def write_record(self, record: dict) -> None:
        self.records.append(record)


class JsonArraySink(CollectingSink):
    """One JSON array, written when the sink closes (bench --format json)."""

    def close(self) -> None:
        try:
            self.output.write(json.dumps(self.records, indent=1, ensure_ascii=False) + "\n")
        finally:
            super().close()
