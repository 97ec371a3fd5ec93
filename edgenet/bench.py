"""Latency harness, in the vocabulary of LiteRT's `benchmark_model`.

Per (model, delegate, threads) one record: `init_ms` (interpreter creation with its delegates), `first_ms`
(the first inference; on an Edge TPU it includes the model upload), `warmup_ms` (mean of the warm-up runs,
the first included, as benchmark_model's "Warmup (avg)"), and the steady state `latency_ms`
{mean std min p50 p90 p99 max} over at least `runs` inferences and `min_seconds` of wall time, whichever is
later (benchmark_model's defaults: 50 runs, 1 s, at most 150 s). In invoke mode only `invoke()` is inside
the timed region (`time.perf_counter_ns` either side); the input is set once, pseudo-random like
benchmark_model's. In e2e mode each frame is decoded, preprocessed, invoked and postprocessed from real
photos, sequentially, and each stage gets its percentiles and its share of the total.

Reporting (tables, CSV, published figures, the regression gate) is edgenet.bench_report.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgenet import host
from edgenet.choices import BenchMode, Delegate
from edgenet.errors import InputError, UsageError
from edgenet.stats import percentile

DEFAULT_RUNS = 50
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_WARMUP = 5
MAX_SECONDS = 150.0  # benchmark_model's --max_secs: stop there even if --runs is not reached
STAT_KEYS = ("mean", "std", "min", "p50", "p90", "p99", "max")
E2E_STAGES = ("decode", "preprocess", "inference", "postprocess", "total")


def latency_stats(values_ms: Sequence[float]) -> dict:
    """mean std min p50 p90 p99 max (population std, like benchmark_model)."""
    if not values_ms:
        return {key: math.nan for key in ("mean", "std", "min", "p50", "p90", "p99", "max")}
    count = len(values_ms)
    mean = sum(values_ms) / count
    std = math.sqrt(sum((v - mean) ** 2 for v in values_ms) / count)
    return {
        "mean": mean,
        "std": std,
        "min": min(values_ms),
        "p50": percentile(values_ms, 50),
        "p90": percentile(values_ms, 90),
        "p99": percentile(values_ms, 99),
        "max": max(values_ms),
    }


def parse_threads(text: str | None) -> list[int] | None:
    """'1,2,4' -> [1, 2, 4] (order kept, duplicates dropped); None or '' -> None (the default)."""
    if text is None or not text.strip():
        return None
    counts: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UsageError(
                f"--threads takes positive whole numbers separated by commas (e.g. 1,2,4), not {text!r}"
            )
        if int(part) not in counts:
            counts.append(int(part))
    return counts


def share_of_total(stage_stats: dict, total_key: str = "total") -> dict:
    """Each stage's mean as a fraction of the total's mean (0..1)."""
    total = stage_stats[total_key]["mean"]
    return {
        name: (stats["mean"] / total if total else math.nan)
        for name, stats in stage_stats.items()
        if name != total_key
    }


def fps_from_mean(mean_ms: float) -> float:
    return 1000.0 / mean_ms if mean_ms and mean_ms > 0 else math.nan


# -- the record -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchResult:
    model: str
    file: str
    backend: str
    backend_version: str
    delegate: str  # the kind: cpu, xnnpack, edgetpu, external
    threads: int
    mode: str
    runs: int
    warmup_runs: int
    init_ms: float
    first_ms: float
    warmup_ms: float
    latency_ms: dict
    fps: float
    peak_rss_mb: float | None
    seconds: float
    input: str
    partitions: int = 0  # delegate partitions (XNNPACK splits graphs with ops it does not take)
    latency_only: bool = False  # random-weight build: its latency is real, its predictions mean nothing
    host: dict = field(default_factory=dict)
    stages: dict | None = None  # e2e: stage -> {mean p50 p90 p99 share}
    time: str = ""
    delegate_reason: str | None = None

    def to_dict(self) -> dict:
        record = {
            "model": self.model,
            "file": self.file,
            "backend": self.backend,
            "backend_version": self.backend_version,
            "delegate": self.delegate,
            "delegate_reason": self.delegate_reason,
            "threads": self.threads,
            "mode": self.mode,
            "runs": self.runs,
            "warmup_runs": self.warmup_runs,
            "init_ms": _round(self.init_ms),
            "first_ms": _round(self.first_ms),
            "warmup_ms": _round(self.warmup_ms),
            "latency_ms": {key: _round(self.latency_ms[key]) for key in STAT_KEYS},
            "fps": _round(self.fps, 2),
            "peak_rss_mb": _round(self.peak_rss_mb, 1),
            "seconds": _round(self.seconds, 3),
            "input": self.input,
            "partitions": self.partitions,
            "latency_only": self.latency_only,
        }
        if self.stages is not None:
            record["stages"] = self.stages
        record["host"] = self.host
        record["time"] = self.time
        return record


def _round(value, digits: int = 4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


# -- host conditions and memory ------------------------------------------------------------------------


def conditions(sysfs: Path | None = None) -> dict:
    """What can change during a run: SoC temperature, throttling, Edge TPU temperature, load."""
    from edgenet import edgetpu

    tpu_temps = [tpu.temperature_c for tpu in edgetpu.find_edgetpus() if tpu.temperature_c is not None]
    return {
        "soc_temp_c": host.soc_temperature_c(sysfs),
        "throttled": host.throttled_state(sysfs),
        "edgetpu_temp_c": tpu_temps[0] if tpu_temps else None,
        "loadavg_1m": host.load_average(),
    }


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux 4.0+: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident set size in MiB: VmHWM (since the last reset), else getrusage's lifetime maximum."""
    text = host.read_text(Path("/proc/self/status"))
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", text or "", re.MULTILINE)
    if match:
        return int(match.group(1)) / 1024.0
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


# -- timing loops -----------------------------------------------------------------------------------


@dataclass
class Timings:
    first_ms: float
    warmup_ms: list[float]  # the warm-up runs, the first included
    samples_ms: list[float]  # steady state
    seconds: float
    stages: dict | None = None  # e2e: stage -> list of ms


def steady_state(
    step: Callable[[], float],
    *,
    runs: int,
    min_seconds: float,
    max_seconds: float = MAX_SECONDS,
    check_stop: Callable[[], None] = lambda: None,
) -> tuple[list[float], float]:
    """Call `step` (which returns its own timed ms) until `runs` calls AND `min_seconds`, or `max_seconds`.
    `check_stop()` runs between calls, outside the timed region (it raises to stop: edgenet.run.stop)."""
    clock = time.perf_counter_ns
    started = clock()
    at_least = started + int(min_seconds * 1e9)
    at_most = started + int(max_seconds * 1e9)
    samples: list[float] = []
    while True:
        samples.append(step())
        check_stop()
        now = clock()
        if (len(samples) >= runs and now >= at_least) or now >= at_most:
            return samples, (now - started) / 1e9


def random_input(spec):
    """A pseudo-random input tensor for an InputSpec (benchmark_model feeds random data too), fixed seed."""
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (1, spec.height, spec.width, spec.channels)
    if spec.dtype == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if spec.dtype == "int8":
        return rng.integers(-128, 128, size=shape, dtype=np.int8)
    lo, hi = spec.value_range
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def time_invoke(
    engine,
    *,
    runs: int,
    min_seconds: float,
    warmup: int,
    max_seconds: float = MAX_SECONDS,
    check_stop: Callable[[], None] = lambda: None,
) -> Timings:
    """Invoke-only timings: set the input once, then perf_counter_ns around engine.invoke() alone."""
    engine.set_input(random_input(engine.input))
    invoke = engine.invoke
    clock = time.perf_counter_ns

    def once() -> float:
        started = clock()
        invoke()
        return (clock() - started) / 1e6

    warm = [once() for _ in range(max(1, warmup))]  # a failing delegate: Engine.invoke's DeviceError
    gc.collect()
    samples, seconds = steady_state(
        once, runs=runs, min_seconds=min_seconds, max_seconds=max_seconds, check_stop=check_stop
    )
    return Timings(first_ms=warm[0], warmup_ms=warm, samples_ms=samples, seconds=seconds)


def time_e2e(
    model,
    paths: Sequence[str],
    *,
    runs: int,
    min_seconds: float,
    warmup: int,
    max_seconds: float = MAX_SECONDS,
    check_stop: Callable[[], None] = lambda: None,
) -> Timings:
    """Per frame, sequentially: decode, preprocess, invoke, postprocess over the photos, cycling."""
    cycle = itertools.cycle(paths)
    stages: dict[str, list[float]] = {stage: [] for stage in E2E_STAGES}
    failures: list[str] = []

    def frame_once() -> dict:
        for _attempt in range(len(paths)):
            path = next(cycle)
            record = model.process(path)
            if "error" not in record:
                return record["latency_ms"]
            failures.append(f"{path}: {record['error']}")
        raise InputError(f"no image could be classified for the e2e benchmark ({failures[-1]})")

    warm = [frame_once()["total"] for _ in range(max(1, warmup))]

    def step() -> float:
        latency = frame_once()
        for stage in E2E_STAGES:
            stages[stage].append(latency[stage])
        return latency["total"]

    gc.collect()
    samples, seconds = steady_state(
        step, runs=runs, min_seconds=min_seconds, max_seconds=max_seconds, check_stop=check_stop
    )
    return Timings(first_ms=warm[0], warmup_ms=warm, samples_ms=samples, seconds=seconds, stages=stages)


def stage_summary(stages: dict[str, list[float]]) -> dict:
    stats = {stage: latency_stats(values) for stage, values in stages.items()}
    shares = share_of_total(stats)
    summary = {}
    for stage, values in stats.items():
        summary[stage] = {key: _round(values[key]) for key in ("mean", "p50", "p90", "p99")}
        summary[stage]["share"] = _round(shares.get(stage, 1.0), 3)
    return summary


# -- one configuration ------------------------------------------------------------------------------


def bench_one(
    model: str,
    *,
    threads: int,
    delegate: Delegate = Delegate.auto,
    device: str = "",
    delegate_lib: str | None = None,
    delegate_options: tuple[tuple[str, str], ...] = (),
    mode: BenchMode = BenchMode.invoke,
    images: Sequence[str] = (),
    runs: int = DEFAULT_RUNS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    warmup: int = DEFAULT_WARMUP,
    host_facts: dict | None = None,
    on_warning: Callable[[str], None] | None = None,
    check_stop: Callable[[], None] = lambda: None,
) -> BenchResult:
    """Open `model` once with `threads` and `delegate`, time it, and describe the run."""
    from edgenet.model import ModelRequest, open_model
    from edgenet.run.records import utc_timestamp

    mode = BenchMode(mode)
    if mode == BenchMode.e2e and not images:
        raise UsageError("--mode e2e needs photos: give --images DIR")
    gc.collect()
    reset_peak_rss()
    request = ModelRequest(
        model=model,
        threads=threads,
        delegate=delegate,
        device=device,
        delegate_lib=delegate_lib,
        delegate_options=delegate_options,
        pipeline=False,
    )
    opened = open_model(request)
    for message in opened.warnings:
        if on_warning:
            on_warning(message)
    engine = opened.engine
    before = conditions()
    timed = {"runs": runs, "min_seconds": min_seconds, "warmup": warmup, "check_stop": check_stop}
    if mode == BenchMode.invoke:
        timings = time_invoke(engine, **timed)
        described = f"random {engine.input.dtype} {engine.input.height}x{engine.input.width}"
    else:
        timings = time_e2e(opened, images, **timed)
        resize = getattr(opened.task, "resize", None)  # detectors take the whole frame
        described = f"{len(images)} images" + (f", resize {resize.value}" if resize is not None else "")
    record_host = _record_host(host_facts or host.host_info(), before, conditions())
    stats = latency_stats(timings.samples_ms)
    placement = engine.placement
    return BenchResult(
        model=opened.name,
        file=Path(engine.model_path).name,
        backend=engine.backend.name,
        backend_version=engine.backend.version,
        delegate=placement.kind,
        delegate_reason=placement.reason,
        threads=threads,
        mode=mode.value,
        runs=len(timings.samples_ms),
        warmup_runs=len(timings.warmup_ms),
        init_ms=engine.init_ms,
        first_ms=timings.first_ms,
        warmup_ms=sum(timings.warmup_ms) / len(timings.warmup_ms),
        latency_ms=stats,
        fps=fps_from_mean(stats["mean"]),
        peak_rss_mb=peak_rss_mb(),
        seconds=timings.seconds,
        input=described,
        partitions=engine.partitions,
        latency_only=opened.info.latency_only,
        host=record_host,
        stages=stage_summary(timings.stages) if timings.stages else None,
        time=utc_timestamp(),
    )


def _record_host(facts: dict, before: dict, after: dict) -> dict:
    """The host of a record: what does not change, and the conditions before and after the timing."""
    tpu = after["edgetpu_temp_c"] if after["edgetpu_temp_c"] is not None else before["edgetpu_temp_c"]
    return {
        **facts,
        "soc_temp_c_before": before["soc_temp_c"],
        "soc_temp_c_after": after["soc_temp_c"],
        "throttled": after["throttled"],
        "edgetpu_temp_c": tpu,
        "loadavg_1m": before["loadavg_1m"],
    }


# -- which models and photos --------------------------------------------------------------------------


def local_models() -> list[str]:
    """Every zoo entry available without the network: in the cache, or in a mirror that is a folder."""
    from edgenet import zoo

    names = []
    mirror = zoo.mirror_location()
    for spec in zoo.catalog().values():
        in_mirror = bool(mirror and "://" not in mirror and zoo._mirror_candidates(spec.artifact))
        if in_mirror or zoo.is_present(spec.artifact):
            names.append(spec.name)
    return names


def default_images() -> list[str]:
    """The shared photos next to the model mirror (../shared/images) when present, else the sample photos."""
    from edgenet import zoo
    from edgenet.sources import expand_inputs

    candidates = []
    if os.environ.get("EDGENET_SHARED"):
        candidates.append(Path(os.environ["EDGENET_SHARED"]) / "images")
    mirror = zoo.mirror_location()
    if mirror and "://" not in mirror:
        candidates.append(Path(mirror).expanduser().resolve().parent / "images")
    for folder in candidates:
        if folder.is_dir():
            found = expand_inputs([str(folder)])
            if found:
                return found
    return expand_inputs([str(zoo.sample_images())])
