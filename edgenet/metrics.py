"""Prometheus textfile for node_exporter's textfile collector (prometheus-client writes it atomically)."""

from __future__ import annotations

import time

INFERENCE_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024)


class PromTextfile:
    def __init__(self, path: str, *, model: str, delegate: str, every_s: float = 10.0):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.path = path
        self.every_s = every_s
        self._last_write = 0.0
        self._started = time.monotonic()
        self._count = 0
        self.registry = CollectorRegistry()
        labels = {"model": model, "delegate": delegate}
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
            "edgenet_fps", "Frames per second over the run so far", names, registry=self.registry
        ).labels(**labels)
        self.last_success = Gauge(
            "edgenet_last_success_timestamp_seconds",
            "Unix time of the last frame classified without error",
            names,
            registry=self.registry,
        ).labels(**labels)

    def observe(self, record: dict) -> None:
        self._count += 1
        self.frames.inc()
        if "error" in record:
            self.errors.inc()
        else:
            self.inference.observe(record["latency_ms"]["inference"] / 1000.0)
            self.last_success.set(time.time())
        elapsed = time.monotonic() - self._started
        if elapsed > 0:
            self.fps.set(self._count / elapsed)
        if self.every_s and time.monotonic() - self._last_write >= self.every_s:
            self.write()

    def write(self) -> None:
        from prometheus_client import write_to_textfile

        try:
            write_to_textfile(self.path, self.registry)  # temp file + rename
        except OSError as exc:
            from edgenet.errors import DeviceError

            raise DeviceError(
                f"cannot write the Prometheus textfile {self.path}: {exc.strerror or exc}"
            ) from None
        self._last_write = time.monotonic()
