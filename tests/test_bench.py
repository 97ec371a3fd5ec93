"""edgenet bench: statistics (pure), host readers (fake /sys, /proc), record schema of real runs, --compare.

No assert here depends on how fast anything ran: real runs are checked for shape and consistency only.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from edgenet import bench, bench_report, host, runtime
from edgenet.errors import UsageError
from edgenet.stats import percentile

SMALL = "v1-0.25-128"
FAST = ("--runs", "5", "--min-seconds", "0", "--warmup", "2")
RECORD_KEYS = {
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
    "latency_ms",
    "fps",
    "peak_rss_mb",
    "seconds",
    "input",
    "host",
    "time",
}
HOST_KEYS = {
    "machine",
    "system",
    "cpu_model",
    "board",
    "cpu_count",
    "cores_usable",
    "python",
    "governor",
    "soc_temp_c_before",
    "soc_temp_c_after",
    "throttled",
    "edgetpu_temp_c",
    "loadavg_1m",
}


# -- statistics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 7, 50, 101])
def test_percentile_matches_numpy_linear(size):
    values = list(np.random.default_rng(size).gamma(2.0, 1.5, size))
    for q in (0, 1, 25, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


def test_percentile_ignores_order_and_handles_empty():
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert math.isnan(percentile([], 50))


def test_latency_stats_known_values():
    stats = bench.latency_stats([1.0, 2.0, 3.0, 4.0])
    assert stats["mean"] == 2.5
    assert stats["std"] == pytest.approx(math.sqrt(1.25))  # population std, like benchmark_model
    assert (stats["min"], stats["p50"], stats["max"]) == (1.0, 2.5, 4.0)
    assert stats["p90"] == pytest.approx(3.7)
    assert stats["p99"] == pytest.approx(3.97)
    assert set(stats) == set(bench.STAT_KEYS)


def test_latency_stats_agree_with_numpy_and_empty_is_nan():
    values = list(np.random.default_rng(3).normal(5.0, 0.5, 200))
    stats = bench.latency_stats(values)
    assert stats["std"] == pytest.approx(float(np.std(values)))
    assert stats["p99"] == pytest.approx(float(np.percentile(values, 99)))
    assert all(math.isnan(v) for v in bench.latency_stats([]).values())


def test_default_threads_is_usable_cores_capped():
    assert 1 <= runtime.default_threads() <= runtime.MAX_DEFAULT_THREADS
    assert runtime.default_threads() == min(runtime.MAX_DEFAULT_THREADS, host.usable_cores())


def test_shares_and_fps():
    stages = {"decode": {"mean": 1.0}, "inference": {"mean": 3.0}, "total": {"mean": 4.0}}
    assert bench.share_of_total(stages) == {"decode": 0.25, "inference": 0.75}
    assert bench.fps_from_mean(2.0) == 500.0
    assert math.isnan(bench.fps_from_mean(0.0))


@pytest.mark.parametrize(
    "text, expected", [("1,2,4", [1, 2, 4]), (" 2, 1 ,2", [2, 1]), ("3", [3]), (None, None), ("", None)]
)
def test_parse_threads(text, expected):
    assert bench.parse_threads(text) == expected


@pytest.mark.parametrize("text", ["0", "1,,2", "two", "-1", "1.5"])
def test_parse_threads_rejects(text):
    with pytest.raises(UsageError):
        bench.parse_threads(text)


def test_steady_state_stops_at_runs_when_min_seconds_is_zero_and_at_max_seconds():
    calls = []

    def step():
        calls.append(1)
        return 1.0

    samples, _ = bench.steady_state(step, runs=7, min_seconds=0.0)
    assert samples == [1.0] * 7
    samples, _ = bench.steady_state(step, runs=10_000, min_seconds=0.0, max_seconds=0.0)
    assert len(samples) == 1  # past max_seconds after the first run: stop even below --runs


# -- host readers on fake trees ---------------------------------------------------------------------


def test_decode_throttled():
    assert host.decode_throttled(0) == []
    assert host.decode_throttled(0x50005) == [
        "under-voltage now",
        "throttled now",
        "under-voltage has occurred",
        "throttling has occurred",
    ]


def test_host_readers_on_a_fake_raspberry_pi(tmp_path):
    sysfs, proc = tmp_path / "sys", tmp_path / "proc"
    for index, (kind, milli) in enumerate([("gpu-thermal", "39000"), ("cpu-thermal", "52612")]):
        zone = sysfs / "class" / "thermal" / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    firmware = sysfs / "devices" / "platform" / "soc" / "soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text("50000\n")
    cpufreq = sysfs / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    cpufreq.mkdir(parents=True)
    (cpufreq / "scaling_governor").write_text("ondemand\n")
    (proc / "device-tree").mkdir(parents=True)
    (proc / "device-tree" / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    (proc / "cpuinfo").write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\n"
        "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )
    assert host.soc_temperature_c(sysfs) == 52.6  # cpu-thermal preferred over the first zone
    assert host.throttled_state(sysfs, use_vcgencmd=False) == {
        "raw": "0x50000",
        "flags": ["under-voltage has occurred", "throttling has occurred"],
    }
    assert host.governors(sysfs) == ["ondemand"]
    assert host.board_model(sysfs, proc) == "Raspberry Pi 4 Model B Rev 1.4"
    assert host.cpu_model(proc) == "BCM2835"


def test_host_readers_when_nothing_is_readable(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor : 0\nmodel name : AMD EPYC 7B13\n")
    assert host.cpu_model(tmp_path) == "AMD EPYC 7B13"
    assert host.soc_temperature_c(tmp_path) is None
    assert host.throttled_state(tmp_path, use_vcgencmd=False) is None
    assert host.governors(tmp_path) == []


# -- published figures ------------------------------------------------------------------------------


def test_published_figures_have_sources_and_known_models():
    from edgenet import zoo

    data = bench_report.published_data()
    for figure in data["figures"]:
        assert figure["source"] in data["sources"]
        assert figure["metric"] in ("latency_ms", "top1")
        assert set(figure["models"]) <= set(zoo.catalog()), figure
    labels = [bench_report.published_label(f) for f in bench_report.published_for("v2")]
    assert "2.6 ms Edge TPU [coral-benchmarks]" in labels
    assert any(
        "top-1 70.8%" in label
        for label in map(bench_report.published_label, bench_report.published_for("v2-qat"))
    )
    assert bench_report.published_for("ssd-v1") == []  # nothing published for this file


def test_local_models_are_those_in_the_mirror_or_cache(mirror):
    names = bench.local_models()
    assert {"v2", SMALL, "v4-conv-small", "v4-hybrid-medium", "v1-random"} <= set(names)  # built/ included
    assert "v1" not in names  # too large for the mirror, not cached: --all pulls nothing from the network


# -- compare (pure) ---------------------------------------------------------------------------------


def _record(model="v2", threads=1, p50=2.0, delegate="xnnpack", mode="invoke"):
    return {
        "model": model,
        "threads": threads,
        "delegate": delegate,
        "mode": mode,
        "latency_ms": {"p50": p50},
    }


def test_compare_flags_only_rows_beyond_tolerance():
    reference = [
        {"model": "v2", "delegate": "xnnpack", "threads": "1", "mode": "invoke", "p50_ms": "2.0"},
        {"model": "v2", "delegate": "xnnpack", "threads": "2", "mode": "invoke", "p50_ms": "1.0"},
    ]
    records = [_record(threads=1, p50=2.5), _record(threads=2, p50=1.4), _record(model="v1", p50=9.0)]
    compared, regressed = bench_report.compare(records, reference, tolerance=0.30)
    assert [(r["threads"], r["ratio"]) for r in compared] == [(1, 1.25), (2, 1.4)]
    assert [r["threads"] for r in regressed] == [2]
    assert bench_report.compare(records, reference, tolerance=0.5)[1] == []


# -- real runs through the console script -----------------------------------------------------------


def test_json_records_have_every_field(cli):
    done = cli("bench", "--model", SMALL, "--threads", "1,2", "--format", "json", *FAST)
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [r["threads"] for r in records] == [1, 2]
    for record in records:
        assert set(record) >= RECORD_KEYS
        assert set(record["host"]) >= HOST_KEYS
        assert record["model"] == SMALL and record["mode"] == "invoke"
        assert record["file"] == "mobilenet_v1_0.25_128_quant.tflite"
        assert record["backend"] and record["backend_version"] and record["delegate"]
        assert record["runs"] >= 5 and record["warmup_runs"] == 2
        latency = record["latency_ms"]
        assert set(latency) == set(bench.STAT_KEYS)
        assert latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert latency["min"] > 0 and record["first_ms"] > 0 and record["init_ms"] > 0
        assert record["fps"] == pytest.approx(1000 / latency["mean"], rel=1e-2)
        assert record["peak_rss_mb"] > 10
        assert record["host"]["cores_usable"] >= 1 and record["host"]["python"]
        assert record["time"].endswith("Z")


def test_csv_output_file_and_jsonl(cli, tmp_path):
    target = tmp_path / "bench.csv"
    done = cli("bench", "--model", SMALL, "-t", "1", "--format", "csv", "--output", str(target), *FAST)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    with open(target, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == bench_report.CSV_FIELDS
    assert len(rows) == 1 and rows[0]["model"] == SMALL and rows[0]["threads"] == "1"
    assert float(rows[0]["min_ms"]) <= float(rows[0]["p50_ms"]) <= float(rows[0]["max_ms"])
    done = cli("bench", "--model", SMALL, "-t", "1", "--format", "jsonl", *FAST)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 1 and json.loads(lines[0])["threads"] == 1


def test_table_goes_to_stderr_with_published_figures(cli):
    done = cli(
        "bench",
        "--model",
        "v2",
        "-t",
        "1",
        "--runs",
        "3",
        "--min-seconds",
        "0",
        "--warmup",
        "1",
        "-f",
        "table",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "2.6 ms Edge TPU [coral-benchmarks]" in done.stderr
    assert "https://coral.ai/docs/edgetpu/benchmarks/" in done.stderr


def test_e2e_mode_reports_stages_on_real_photos(cli, images):
    done = cli(
        "bench",
        "--model",
        SMALL,
        "-t",
        "1",
        "--mode",
        "e2e",
        "--images",
        str(images),
        "--format",
        "json",
        *FAST,
    )
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(done.stdout)
    assert record["mode"] == "e2e" and record["input"].startswith("12 images")
    stages = record["stages"]
    assert set(stages) == set(bench.E2E_STAGES)
    assert sum(
        stages[s]["share"] for s in ("decode", "preprocess", "inference", "postprocess")
    ) == pytest.approx(1.0, abs=0.01)
    assert stages["total"]["mean"] == pytest.approx(record["latency_ms"]["mean"], rel=1e-3)


def test_cpu_delegate_with_two_threads_warns(cli):
    done = cli("bench", "--model", SMALL, "-t", "2", "--delegate", "cpu", "--format", "json", *FAST)
    assert done.returncode == 0, done.stderr
    assert "warning: --delegate cpu with more than one thread" in done.stderr
    assert json.loads(done.stdout)[0]["delegate"] == "cpu"


def test_compare_pass_and_fail_against_an_edited_real_csv(cli, tmp_path):
    measured = tmp_path / "measured.csv"
    done = cli("bench", "--model", SMALL, "-t", "1", "--format", "csv", "-o", str(measured), *FAST)
    assert done.returncode == 0, done.stderr
    with open(measured, newline="") as handle:
        rows = list(csv.DictReader(handle))

    def reference(name: str, factor: float):
        path = tmp_path / name
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=bench_report.CSV_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "p50_ms": float(row["p50_ms"]) * factor})
        return str(path)

    generous = reference("slow-reference.csv", 1e6)  # the reference was a million times slower: passes
    done = cli("bench", "--model", SMALL, "-t", "1", "--format", "json", "--compare", generous, *FAST)
    assert done.returncode == 0, done.stderr
    assert "1 row(s) checked" in done.stderr and "0 regressed" in done.stderr

    strict = reference("fast-reference.csv", 1e-6)  # a million times faster: this run regressed
    done = cli("bench", "--model", SMALL, "-t", "1", "--format", "json", "--compare", strict, *FAST)
    assert done.returncode == 1, done.stderr
    assert f"REGRESSED {SMALL}" in done.stderr and "1 regressed" in done.stderr
    assert json.loads(done.stdout)[0]["model"] == SMALL  # the data is still written


def test_compare_with_no_matching_row_or_missing_file_is_a_usage_error(cli, tmp_path):
    other = tmp_path / "other.csv"
    row = {"model": "v2", "delegate": "xnnpack", "threads": "4", "p50_ms": "1.0"}
    values = ",".join(row.get(f, "") for f in bench_report.CSV_FIELDS)
    other.write_text(",".join(bench_report.CSV_FIELDS) + "\n" + values + "\n")
    done = cli("bench", "--model", SMALL, "-t", "1", "--compare", str(other), *FAST)
    assert done.returncode == 2 and "no row matches" in done.stderr
    done = cli("bench", "--model", SMALL, "--compare", str(tmp_path / "nope.csv"), *FAST)
    assert done.returncode == 2 and "no such file" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("--format", "xml"), "'xml' is not one of 'table', 'json', 'jsonl', 'csv'"),
        (("--threads", "0"), "--threads takes"),
        (("--mode", "video"), "'video' is not one of 'invoke', 'e2e'"),
        (("--output", "results.txt"), "name the file .csv"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli, args, message):
    done = cli("bench", "--model", SMALL, *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_missing_model_is_exit_3(cli, tmp_path):
    done = cli("bench", "--model", str(tmp_path / "absent.tflite"), *FAST)
    assert done.returncode == 3 and "Traceback" not in done.stderr
