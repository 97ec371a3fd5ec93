"""The per-frame record: the one place that defines its fields (README, "Records and exit codes").

    {"source", "frame", "model", "delegate", ["delegate_reason"], <task fields: "top_k" | "detections" ...>,
     "latency_ms": {["capture"], "decode", "preprocess", "inference", [task stages], "postprocess", "total"},
     "time", ["captured", "dropped"], ["latency_only"], ["saved"]}

A frame that fails is a record too: {"source", "frame", "model", "error", "time", ["captured"]}.

With regions (--roi), a region's confirmed change of state is a record of its own, after the frame's:
    {"source", "frame", "model", "event": "state", "region", "from", "to", "score", "time"}
(`from` is null for a region's first confirmed state.)
`saved`: the path of the JPEG that --save kept of this frame (its sidecar is the same path ending in .json,
holding this record); added by the evidence sink (edgenet.sinks.evidence), which runs before the data writer,
only once both files are complete under their names.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def utc_timestamp(seconds: float | None = None) -> str:
    """ISO 8601, UTC, milliseconds: 2026-11-25T14:30:00.123Z."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def latency_ms(frame, stages: dict) -> dict:
    """The frame's stages in ms, rounded to µs; `total` is their sum (the capture wait is not a stage of the
    frame's own work, so it stays out of the total)."""
    latency = {} if frame.capture_ms is None else {"capture": round(frame.capture_ms, 3)}
    latency["decode"] = round(frame.decode_ms, 3)
    total = frame.decode_ms
    for name, value in stages.items():
        latency[name] = round(value, 3)
        total += value
    latency["total"] = round(total, 3)
    return latency


def frame_record(frame, model, fields: dict, stages: dict, done: float) -> dict:
    """A classified (or detected...) frame. `model` is an edgenet.model.ModelInfo; `done` is when its
    inference ended (time.time()): the record's `time`."""
    record = {"source": frame.source, "frame": frame.index, "model": model.name, "delegate": model.delegate}
    if model.delegate_reason:
        record["delegate_reason"] = model.delegate_reason
    record.update(fields)
    record["latency_ms"] = latency_ms(frame, stages)
    record["time"] = utc_timestamp(done)
    if frame.captured is not None:
        record["captured"] = utc_timestamp(frame.captured)
        record["dropped"] = frame.dropped
    if model.latency_only:
        record["latency_only"] = True
    return record


def error_record(frame, model, error: str, done: float) -> dict:
    record = {
        "source": frame.source,
        "frame": frame.index,
        "model": model.name,
        "error": error,
        "time": utc_timestamp(done),
    }
    if frame.captured is not None:
        record["captured"] = utc_timestamp(frame.captured)
    return record


def state_event(record: dict, region: str, before: str | None, after: str, score: float | None) -> dict:
    """A region's confirmed change of state, seen in `record` (the frame that confirmed it)."""
    return {
        "source": record["source"],
        "frame": record["frame"],
        "model": record["model"],
        "event": "state",
        "region": region,
        "from": before,
        "to": after,
        "score": score,
        "time": record["time"],
    }
