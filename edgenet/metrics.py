"""Prometheus textfile for node_exporter's textfile collector (prometheus-client writes it atomically).

The textfile is a report, not a result: a write that fails (disk full, folder removed, permissions) is a
warning collected in `warnings` for the command to print once, the run goes on, and the next periodic write
tries again. Labels are stable across runs: `model` and `delegate`, the delegate being a kind (cpu, xnnpack,
edgetpu, external), never a sentence.
"""

from __future__ import annotations

import time

INFERENCE_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024)
DELEGATE_KINDS = ("cpu", "xnnpack", "edgetpu", "external")


def delegate_kind(delegate: str) -> str:
    """The kind a record's or an engine's delegate names: "cpu (xnnpack failed ...)" -> "cpu"; a name that is
    none of the four (a plugin's label) -> "external"."""
    words = delegate.strip().split()
    first = words[0].lower() if words else ""
    return first if first in DELEGATE_KINDS else "external"


class PromTextfile:
    def __init__(self, path: str, *, model: str, delegate: str, every_s: float = 10.0):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.path = path
        self.every_s = every_s
        self.warnings: list[str] = []  # one line per distinct failure, for the command to print once
        self.failed_writes = 0
        self._last_write = 0.0
        self.registry = CollectorRegistry()
        labels = {"model": model, "delegate": delegate_kind(delegate)}
        names = list(labels)
        self.frames = Counter(
            "edgenet_frames", "Images or frames classified (errors included)", names, registry=self.registry
        ).labels(**labels)
        self.errors = Counter(
            "edgenet_errors", "Images or frames that failed", names, registry=self.registry
        ).labels(**labels)
        self.inference = Histogram(
            "edgenet_inference_latency_seconds",
            "invoke() time per frame",
            names,
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.fps = Gauge(
            "edgenet_fps",
            "Frames per second, first result to last (the run's summary)",
            names,
            registry=self.registry,
        ).labels(**labels)
        self.last_success = Gauge(
            "edgenet_last_success_timestamp_seconds",
            "Unix time of the last frame classified without error",
            names,
            registry=self.registry,
        ).labels(**labels)

    def observe(self, record: dict, fps: float | None = None) -> None:
        """One record; `fps`: the run's (edgenet.run.summary.RunSummary.steady_fps), counted there once."""
        self.frames.inc()
        if "error" in record:
            self.errors.inc()
        else:
            inference = (record.get("latency_ms") or {}).get("inference")
            if isinstance(inference, (int, float)):
                self.inference.observe(inference / 1000.0)
            self.last_success.set(time.time())
        if fps is not None:
            self.fps.set(fps)
        if self.every_s and time.monotonic() - self._last_write >= self.every_s:
            self.write()

    def write(self) -> bool:
        """Write the textfile now. False (and a warning) if it could not be written; never raises."""
        from prometheus_client import write_to_textfile

        self._last_write = time.monotonic()  # a failure is retried at the next period, not every record
        try:
            write_to_textfile(
                self.path, self.registry
            )  # temp file + rename; the temp file is removed on error
        except (OSError, UnicodeError) as exc:
            self.failed_writes += 1
            reason = getattr(exc, "strerror", None) or exc
            message = f"cannot write the Prometheus textfile {self.path}: {reason}; the run goes on and " + (
                f"retries every {self.every_s:g} s" if self.every_s else "retries at the next write"
            )
            if message not in self.warnings:
                self.warnings.append(message)
            return False
        return True
