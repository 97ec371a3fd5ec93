"""The run's data writer for a --format: JSON Lines, CSV, or the table."""

from __future__ import annotations

import sys

from edgenet.choices import RecordFormat
from edgenet.sinks.records import (
    DETECT_CSV_FIELDS,
    REGION_CSV_FIELDS,
    STREAM_CSV_FIELDS,
    CsvSink,
    JsonlSink,
    Output,
    RecordSink,
    detect_csv_rows,
    region_csv_rows,
    stream_csv_row,
)
from edgenet.sinks.table import TableSink


def open_record_sink(
    fmt: RecordFormat, output: str | None, stream_records: bool = False, task: str = "classify", regions=False
) -> RecordSink:
    """`output` None: jsonl/csv to stdout, the table to stderr. With a file: appended, line by line.
    `stream_records`: CSV gets the stream columns (capture_ms, captured, dropped); `task` "detect": CSV has a
    row per detection."""
    fmt = RecordFormat(fmt)
    target = Output(output, stream=sys.stderr if fmt == RecordFormat.table else None)
    if fmt == RecordFormat.jsonl:
        return JsonlSink(target)
    if fmt == RecordFormat.csv:
        if regions:
            return CsvSink(target, REGION_CSV_FIELDS, region_csv_rows)
        if task == "detect":
            return CsvSink(target, DETECT_CSV_FIELDS, detect_csv_rows)
        return CsvSink(target, STREAM_CSV_FIELDS, stream_csv_row) if stream_records else CsvSink(target)
    return TableSink(target)
