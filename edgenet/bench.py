"""Latency harness and statistics, in the vocabulary of LiteRT's `benchmark_model`.

Per (model, delegate, threads) one record: `init_ms` (interpreter creation with its delegates), `first_ms`
(the first inference; on an Edge TPU it includes the model upload), `warmup_ms` (mean of the warm-up runs,
the first included, as benchmark_model's "Warmup (avg)"), and the steady state `latency_ms`
{mean std min p50 p90 p99 max} over at least `runs` inferences and `min_seconds` of wall time, whichever is
later (benchmark_model's defaults: 50 runs, 1 s, at most 150 s). In invoke mode only `invoke()` is inside
the timed region (`time.perf_counter_ns` either side); the input is set once, pseudo-random like
benchmark_model's. In e2e mode each frame is decoded, preprocessed, invoked and postprocessed from real
photos, sequentially, and each stage gets its percentiles and its share of the total.

The statistics are pure functions; the host readers take their /proc and /sys roots as parameters.
"""

from __future__ import annotations

import csv
import gc
import itertools
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgenet.errors import InputError, UsageError
from edgenet.runtime import MAX_DEFAULT_THREADS, default_threads, usable_cores  # noqa: F401 - bench's API too
from edgenet.stats import percentile

DEFAULT_RUNS = 50
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_WARMUP = 5
MAX_SECONDS = 150.0  # benchmark_model's --max_secs: stop there even if --runs is not reached
MODES = ("invoke", "e2e")
BENCH_FORMATS = ("table", "json", "jsonl", "csv")
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
    delegate: str
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

    def to_dict(self) -> dict:
        record = {
            "model": self.model,
            "file": self.file,
            "backend": self.backend,
            "backend_version": self.backend_version,
            "delegate": self.delegate,
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


# -- host conditions --------------------------------------------------------------------------------

THROTTLED_BITS = {
    0: "under-voltage now",
    1: "arm frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred",
    17: "arm frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}


def decode_throttled(value: int) -> list[str]:
    """Raspberry Pi firmware's get_throttled bit field -> the flags that are set, in words."""
    return [words for bit, words in sorted(THROTTLED_BITS.items()) if value & (1 << bit)]


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def cpu_model(proc_root: Path = Path("/proc")) -> str | None:
    """'model name' (x86, most arm64 kernels), else 'Hardware' / 'Processor' / 'cpu model' lines."""
    text = _read_text(proc_root / "cpuinfo")
    if not text:
        return platform.processor() or None
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and value.strip() and key not in found:
            found[key] = value.strip()
    for key in ("model name", "hardware", "processor", "cpu model", "uarch"):
        if key in found and not found[key].isdigit():
            return found[key]
    part = found.get("cpu part")
    return f"ARM CPU part {part}" if part else None


def board_model(sysfs_root: Path = Path("/sys"), proc_root: Path = Path("/proc")) -> str | None:
    places = (proc_root / "device-tree" / "model", sysfs_root / "firmware" / "devicetree" / "base" / "model")
    for path in places:
        text = _read_text(path)
        if text:
            return text.replace("\x00", "").strip()
    return None


def soc_temperature_c(sysfs_root: Path = Path("/sys")) -> float | None:
    """The CPU/SoC thermal zone (cpu-thermal on a Pi, x86_pkg_temp on Intel), else the first readable one."""
    zones = sorted((sysfs_root / "class" / "thermal").glob("thermal_zone*"))
    readings = []
    for zone in zones:
        raw = _read_text(zone / "temp")
        if not raw or not raw.lstrip("-").isdigit():
            continue
        kind = (_read_text(zone / "type") or "").lower()
        preferred = any(word in kind for word in ("cpu", "soc", "pkg", "k10temp", "tctl"))
        readings.append((not preferred, int(raw) / 1000.0))
    if not readings:
        return None
    return round(sorted(readings, key=lambda item: item[0])[0][1], 1)


def throttled_state(sysfs_root: Path = Path("/sys"), use_vcgencmd: bool = True) -> dict | None:
    """Raspberry Pi throttling flags, from sysfs (newer kernels) or `vcgencmd get_throttled`; else None."""
    raw = _read_text(sysfs_root / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled")
    if raw is None and use_vcgencmd and shutil.which("vcgencmd"):
        try:
            done = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=2)
            raw = done.stdout.strip().partition("=")[2] or None
        except (OSError, subprocess.SubprocessError):
            raw = None
    if not raw:
        return None
    try:
        value = int(raw, 16)
    except ValueError:
        return None
    return {"raw": hex(value), "flags": decode_throttled(value)}


def governor(sysfs_root: Path = Path("/sys")) -> str | None:
    return _read_text(sysfs_root / "devices" / "system" / "cpu" / "cpu0" / "cpufreq" / "scaling_governor")


def host_info(sysfs_root: Path | None = None, proc_root: Path = Path("/proc")) -> dict:
    """What does not change during a run: machine, CPU, cores, Python, governor."""
    from edgenet import edgetpu

    sysfs_root = sysfs_root or edgetpu.sysfs_root()
    return {
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "cpu_model": cpu_model(proc_root),
        "board": board_model(sysfs_root, proc_root),
        "cpu_count": os.cpu_count(),
        "cores_usable": usable_cores(),
        "python": platform.python_version(),
        "governor": governor(sysfs_root),
    }


def conditions(sysfs_root: Path | None = None) -> dict:
    """What can change during a run: SoC temperature, throttling, Edge TPU temperature, load."""
    from edgenet import edgetpu

    sysfs_root = sysfs_root or edgetpu.sysfs_root()
    tpu_temps = [tpu.temperature_c for tpu in edgetpu.find_edgetpus() if tpu.temperature_c is not None]
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = None
    return {
        "soc_temp_c": soc_temperature_c(sysfs_root),
        "throttled": throttled_state(sysfs_root, use_vcgencmd=sysfs_root == Path("/sys")),
        "edgetpu_temp_c": tpu_temps[0] if tpu_temps else None,
        "loadavg_1m": load,
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
    text = _read_text(Path("/proc/self/status"))
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
    step: Callable[[], float], *, runs: int, min_seconds: float, max_seconds: float = MAX_SECONDS
) -> tuple[list[float], float]:
    """Call `step` (which returns its own timed ms) until `runs` calls AND `min_seconds`, or `max_seconds`."""
    clock = time.perf_counter_ns
    started = clock()
    at_least = started + int(min_seconds * 1e9)
    at_most = started + int(max_seconds * 1e9)
    samples: list[float] = []
    while True:
        samples.append(step())
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
    engine, *, runs: int, min_seconds: float, warmup: int, max_seconds: float = MAX_SECONDS
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
    samples, seconds = steady_state(once, runs=runs, min_seconds=min_seconds, max_seconds=max_seconds)
    return Timings(first_ms=warm[0], warmup_ms=warm, samples_ms=samples, seconds=seconds)


def time_e2e(
    classifier,
    paths: Sequence[str],
    *,
    runs: int,
    min_seconds: float,
    warmup: int,
    max_seconds: float = MAX_SECONDS,
) -> Timings:
    """Per frame, sequentially: decode, preprocess, invoke, postprocess over the photos, cycling."""
    from edgenet.sources import image_frames

    cycle = itertools.cycle(paths)
    stages: dict[str, list[float]] = {stage: [] for stage in E2E_STAGES}
    failures: list[str] = []

    def frame_once() -> dict:
        for _attempt in range(len(paths)):
            path = next(cycle)
            frame = next(image_frames([path]))
            result = classifier.infer(classifier.prepare(frame))
            if result.error is None:
                return result.latency_ms
            failures.append(f"{path}: {result.error}")
        raise InputError(f"no image could be classified for the e2e benchmark ({failures[-1]})")

    warm = [frame_once()["total"] for _ in range(max(1, warmup))]

    def step() -> float:
        latency = frame_once()
        for stage in E2E_STAGES:
            stages[stage].append(latency[stage])
        return latency["total"]

    gc.collect()
    samples, seconds = steady_state(step, runs=runs, min_seconds=min_seconds, max_seconds=max_seconds)
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


def utc_now() -> str:
    from edgenet.pipeline import utc_timestamp

    return utc_timestamp()


def bench_one(
    model: str,
    *,
    threads: int,
    delegate: str = "auto",
    device: str = "",
    delegate_lib: str | None = None,
    mode: str = "invoke",
    images: Sequence[str] = (),
    runs: int = DEFAULT_RUNS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    warmup: int = DEFAULT_WARMUP,
    host: dict | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> BenchResult:
    """Open `model` once with `threads` and `delegate`, time it, and describe the run."""
    from edgenet.pipeline import open_model

    if mode not in MODES:
        raise UsageError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}")
    gc.collect()
    reset_peak_rss()
    opened = open_model(model, threads=threads, delegate=delegate, device=device, delegate_lib=delegate_lib)
    for message in opened.warnings:
        if on_warning:
            on_warning(message)
    classifier = opened.classifier
    engine = classifier.engine
    before = conditions()
    if mode == "invoke":
        timings = time_invoke(engine, runs=runs, min_seconds=min_seconds, warmup=warmup)
        described = f"random {engine.input.dtype} {engine.input.height}x{engine.input.width}"
    else:
        if not images:
            raise UsageError("--mode e2e needs photos: give --images DIR")
        timings = time_e2e(classifier, images, runs=runs, min_seconds=min_seconds, warmup=warmup)
        described = f"{len(images)} images, resize {classifier.resize}"
    after = conditions()
    stats = latency_stats(timings.samples_ms)
    record_host = dict(host or host_info())
    record_host.update(
        {
            "soc_temp_c_before": before["soc_temp_c"],
            "soc_temp_c_after": after["soc_temp_c"],
            "throttled": after["throttled"],
            "edgetpu_temp_c": after["edgetpu_temp_c"]
            if after["edgetpu_temp_c"] is not None
            else before["edgetpu_temp_c"],
            "loadavg_1m": before["loadavg_1m"],
        }
    )
    return BenchResult(
        model=opened.resolved.name,
        file=Path(engine.model_path).name,
        backend=engine.backend.name,
        backend_version=engine.backend.version,
        delegate=engine.delegate,
        threads=threads,
        mode=mode,
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
        latency_only=bool(opened.resolved.spec and opened.resolved.spec.latency_only),
        host=record_host,
        stages=stage_summary(timings.stages) if timings.stages else None,
        time=utc_now(),
    )


# -- which models -----------------------------------------------------------------------------------


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


# -- published figures ------------------------------------------------------------------------------


def published_data() -> dict:
    from importlib import resources

    return json.loads(resources.files("edgenet").joinpath("data/published.json").read_text(encoding="utf-8"))


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


# -- writers ----------------------------------------------------------------------------------------


def record_sink(fmt: str, stream):
    """json (one array at the end), jsonl (a line per record, flushed) or csv (header, a row per record)."""
    from edgenet import sinks

    if fmt == "jsonl":
        return sinks.JsonlSink(stream)
    if fmt == "csv":
        return sinks.CsvSink(stream, fields=CSV_FIELDS, row=csv_row)
    return sinks.JsonArraySink(stream)


def format_for_output(fmt: str, output: str | None) -> str:
    """The data format of --output: --format itself, or (with --format table) the file's extension."""
    if fmt not in BENCH_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(BENCH_FORMATS)}")
    if output is None or fmt != "table":
        return fmt
    extension = Path(output).suffix.lower().lstrip(".")
    if extension in ("json", "jsonl", "csv"):
        return extension
    raise UsageError(
        f"--output {output}: with --format table, name the file .csv, .json or .jsonl "
        "(or give --format csv|json|jsonl)"
    )


def render_table(records: Sequence[dict], stream=None) -> None:
    """Our figures, with the published ones for the same model beside them, for people (stderr)."""
    from rich.console import Console
    from rich.table import Table

    stream = stream or sys.stderr
    console = Console(file=stream, highlight=False, markup=False, width=None if stream.isatty() else 200)
    data = published_data()
    e2e = any(record["mode"] == "e2e" for record in records)
    table = Table(
        title="edgenet bench ("
        + ("per frame: decode+preprocess+invoke+postprocess" if e2e else "invoke only")
        + ", ms)"
    )
    for column in (
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
        "published (source)",
    ):
        table.add_column(
            column,
            justify="right" if column not in ("model", "delegate", "published (source)") else "left",
            overflow="fold",
        )

    def ms(value) -> str:
        return "-" if value is None else (f"{value:.3f}" if value < 1 else f"{value:.2f}")

    for record in records:
        latency = record["latency_ms"]
        figures = published_for(record["model"], data)
        table.add_row(
            record["model"] + (" (latency only)" if record.get("latency_only") else ""),
            record["delegate"],
            str(record["threads"]),
            ms(record["init_ms"]),
            ms(record["first_ms"]),
            ms(latency["p50"]),
            ms(latency["p90"]),
            ms(latency["p99"]),
            f"{ms(latency['mean'])}±{ms(latency['std'])}",
            f"{record['fps']:.1f}" if record["fps"] else "-",
            f"{record['peak_rss_mb']:.0f}" if record["peak_rss_mb"] is not None else "-",
            "; ".join(published_label(f) for f in figures) or "-",
        )
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
        host = records[0]["host"]
        temps = [
            str(host[key]) for key in ("soc_temp_c_before", "soc_temp_c_after") if host.get(key) is not None
        ]
        throttled = host.get("throttled")
        console.print(
            f"host: {host.get('board') or host.get('machine')}, {host.get('cpu_model')}, "
            f"{host.get('cores_usable')}/{host.get('cpu_count')} cores, Python {host.get('python')}, "
            f"governor {host.get('governor') or 'n/a'}, "
            f"SoC {' -> '.join(temps) + ' C' if temps else 'temperature n/a'}"
            + (f", throttled {throttled['raw']} {' '.join(throttled['flags'])}" if throttled else "")
            + (f", Edge TPU {host['edgetpu_temp_c']} C" if host.get("edgetpu_temp_c") is not None else "")
            + f", load {host.get('loadavg_1m')}; {records[0]['backend']} {records[0]['backend_version']}"
        )
        used = sorted(
            {figure["source"] for record in records for figure in published_for(record["model"], data)}
        )
        for key in used:
            source = data["sources"][key]
            console.print(f"[{key}] {source['title']}: {source['url']} ({source['method']})")


def fastest_threads(records: Iterable[dict]) -> dict[tuple[str, str, str], tuple[int, float]]:
    """(model, delegate, mode) -> (threads, p50) of the fastest thread count, where several were measured."""
    groups: dict[tuple[str, str, str], list[tuple[float, int]]] = {}
    for record in records:
        groups.setdefault((record["model"], record["delegate"], record["mode"]), []).append(
            (record["latency_ms"]["p50"], record["threads"])
        )
    return {key: (min(values)[1], min(values)[0]) for key, values in groups.items() if len(values) > 1}


# -- regression gate ------------------------------------------------------------------------------


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
    # "xnnpack (no Edge TPU found)" and "xnnpack" ran the same way: the reason is not part of the key
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
