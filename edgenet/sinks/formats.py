"""The run's data writer for a --format: JSON Lines, CSV, or the table."""

from __future__ import annotations

import sys

from edgenet.choices import RecordFormat
from edgenet.sinks.records import (
    DETECT_CSV_FIELDS,
    REGION_CSV_FIELDS,
    CsvSink,
    JsonlSink,
    Output,
    RecordSink,
    detect_csv_rows,
    region_csv_rows,
)
from edgenet.sinks.table import TableSink


def open_record_sink(
    fmt: RecordFormat, output: str | None, task: str = "classify", regions=False
) -> RecordSink:
    """`output` None: jsonl/csv to stdout, the table to stderr. With a file: appended, line by line.
    `task` "detect": CSV has a row per detection; `regions`: a row per region. Each has one header for
    images and streams alike."""
    fmt = RecordFormat(fmt)
    target = Output(output, stream=sys.stderr if fmt == RecordFormat.table else None)
    if fmt == RecordFormat.jsonl:
        return JsonlSink(target)
    if fmt == RecordFormat.csv:
        if regions:
            return CsvSink(target, REGION_CSV_FIELDS, region_csv_rows)
        if task == "detect":
            return CsvSink(target, DETECT_CSV_FIELDS, detect_csv_rows)
        return CsvSink(target)
    return TableSink(target)
