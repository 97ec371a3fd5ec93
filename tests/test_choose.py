"""`edgenet choose`: the frontier and the choice (pure), the per-board cache, and the command on the
mirror's real models and the shared photos (tiny run counts: no timing is asserted, only what was measured
and what was named)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SHARED, run_cli

from edgenet.choose.cache import MeasurementCache, cache_key, cache_path, files_fingerprint
from edgenet.choose.chart import ChartPoint, text_chart
from edgenet.choose.frontier import Point, budget_from, choose_within, fastest, pareto_frontier
from edgenet.errors import UsageError

QUICK = ("--runs", "2", "--seconds", "0", "--warmup", "1")
THREE = ("-m", "v1-0.25-128", "-m", "v1-0.5-160", "-m", "v2")


def choose(home, *args, env: dict | None = None, timeout: float = 300):
    """`edgenet choose` in a subprocess with its own EDGENET_HOME (model cache and measurement cache)."""
    return run_cli("choose", *args, env={"EDGENET_HOME": str(home), **(env or {})}, timeout=timeout)


def document(run) -> dict:
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


# -- the frontier and the choice (pure) ----------------------------------------------------------------


def test_budget_is_1000_over_fps_or_the_budget_given():
    assert budget_from(30, None) == pytest.approx(33.333, abs=1e-3)
    assert budget_from(None, 25) == 25 and budget_from(None, None) is None
    for fps, budget in ((30, 25), (0, None), (None, -1), (float("nan"), None), (float("inf"), None)):
        with pytest.raises(UsageError):
            budget_from(fps, budget)


def test_frontier_keeps_only_models_nothing_beats_on_both_axes():
    points = [
        Point("slow-bad", 20.0, 60.0),
        Point("fast", 2.0, 40.0),
        Point("mid", 8.0, 70.0),
        Point("mid-worse", 8.0, 65.0),  # same latency, less accurate: dominated
        Point("twin", 9.0, 70.0),  # as accurate as a faster one: dominated
        Point("best", 40.0, 76.0),
        Point("unknown", 1.0, None),  # no accuracy: not on the chart
    ]
    assert [p.model for p in pareto_frontier(points)] == ["fast", "mid", "best"]
    assert choose_within(points, 10.0).model == "mid"
    assert choose_within(points, 8.0).model == "mid"  # the budget is inclusive
    assert choose_within(points, 7.9).model == "fast"
    assert choose_within(points, 1.5) is None  # only the model without an accuracy fits
    assert choose_within(points, 1000).model == "best"
    assert fastest(points).model == "unknown"


def test_choice_is_the_most_accurate_within_budget_and_on_the_frontier_for_random_sets():
    rng = random.Random(16)
    for _ in range(300):
        points = [
            Point(f"m{i}", rng.choice([1.0, 2.0, 3.5, 8.0, 20.0]), rng.choice([None, 40.0, 55.5, 70.0, 75.0]))
            for i in range(rng.randint(1, 8))
        ]
        budget = rng.choice([0.5, 2.0, 5.0, 30.0])
        frontier = pareto_frontier(points)
        known = [p for p in points if p.accuracy is not None]
        for p in frontier:  # nothing at least as fast is at least as accurate
            assert not any(
                q is not p
                and q.latency_ms <= p.latency_ms
                and q.accuracy >= p.accuracy
                and (q.latency_ms, -q.accuracy, q.model) < (p.latency_ms, -p.accuracy, p.model)
                for q in known
            )
        for p in known:  # and everything off the frontier is beaten by something on it
            if p not in frontier:
                assert any(q.latency_ms <= p.latency_ms and q.accuracy >= p.accuracy for q in frontier)
        fitting = [p for p in known if p.latency_ms <= budget]
        choice = choose_within(points, budget)
        if not fitting:
            assert choice is None
        else:
            assert choice.accuracy == max(p.accuracy for p in fitting) and choice in frontier


def test_text_chart_fits_80_columns_and_shows_every_model_once():
    points = [
        ChartPoint("A", "a", 2.0, 39.5, True),
        ChartPoint("B", "b", 6.0, 57.2, True),
        ChartPoint("c", "c", 6.05, 57.0, False),  # the same cell as B: moved next to it
        ChartPoint("D", "d", 45.0, 75.6, True),
    ]
    lines = text_chart(points, 33.3, width=80)
    assert all(len(line) <= 80 for line in lines)
    body = "\n".join(lines[1:-4])
    assert all(body.count(key) == 1 for key in "ABcD")
    plot_rows = [line for line in lines if "|" in line]
    columns = {line.index(":") for line in plot_rows if ":" in line}
    assert len(columns) == 1 and len(plot_rows) >= 8  # the budget: one column of ':' from top to bottom
    assert text_chart([], None) == []


# -- the cache -----------------------------------------------------------------------------------------


def _key(threads=1, delegate="auto"):
    facts = {"cpu_model": "Cortex-A72", "board": "Raspberry Pi 4 Model B Rev 1.4", "machine": "aarch64"}
    return cache_key(facts, "ai_edge_litert", "2.3.0", threads, delegate, 0)


def test_cache_files_are_per_board_runtime_threads_and_delegate(tmp_path):
    paths = {cache_path(tmp_path, _key(t, d)) for t in (1, 2) for d in ("auto", "cpu")}
    assert len(paths) == 4
    other_runtime = cache_key({"machine": "aarch64"}, "tflite_runtime", "2.14.0", 1, "auto", 0)
    assert cache_path(tmp_path, other_runtime) not in paths


def test_cache_round_trip_and_what_invalidates_an_entry(tmp_path):
    cache = MeasurementCache.open(tmp_path, _key())
    assert cache.latency == {} and cache.problem is None
    cache.put_latency(
        "v2", {"model": "v2", "model_sha": "abc", "images": "photos1", "latency_ms": {"p50": 8}}
    )
    again = MeasurementCache.open(tmp_path, _key())
    assert again.latency_for("v2", "abc", "photos1")["latency_ms"] == {"p50": 8}
    assert again.latency_for("v2", "other-file", "photos1") is None  # the catalog's file changed
    assert again.latency_for("v2", "abc", "other-photos") is None  # timed on other photos
    assert MeasurementCache.open(tmp_path, _key(threads=2)).latency == {}
    assert not [
        p for p in (tmp_path / "choose").iterdir() if p.name.startswith(".choose-")
    ]  # no scratch left


def test_a_damaged_cache_file_is_measured_again_not_fatal(tmp_path):
    path = cache_path(tmp_path, _key())
    path.parent.mkdir(parents=True)
    for content in (b"{not json", b"\xff\xfe\x00", b"[1, 2]", json.dumps({"key": {"other": 1}}).encode()):
        path.write_bytes(content)
        cache = MeasurementCache.open(tmp_path, _key())
        assert cache.latency == {} and "measuring again" in cache.problem


def test_photo_fingerprint_follows_names_and_sizes(tmp_path, images):
    photos = sorted(str(p) for p in images.glob("*.jpg"))
    assert files_fingerprint(photos) == files_fingerprint(list(reversed(photos)))
    assert files_fingerprint(photos) != files_fingerprint(photos[:-1])


# -- the command on real models --------------------------------------------------------------------------


def test_choose_measures_caches_and_names_the_most_accurate_model_within_budget(tmp_path):
    home = tmp_path / "home"
    first = document(choose(home, "--fps", "30", *THREE, *QUICK, "-f", "json"))
    assert set(first) >= {
        "task",
        "fps",
        "budget_ms",
        "models",
        "frontier",
        "choice",
        "not_measured",
        "host",
        "cache",
    }
    assert first["budget_ms"] == pytest.approx(1000 / 30, abs=1e-3)
    models = {m["model"]: m for m in first["models"]}
    assert set(models) == {"v1-0.25-128", "v1-0.5-160", "v2"}
    for model in models.values():
        assert model["measured"] == "now" and model["runs"] >= 2 and model["latency_ms"]["p50"] > 0
        assert set(model["stages"]) == {"decode", "preprocess", "inference", "postprocess", "total"}
        assert model["accuracy"]["source"] in ("tf-hosted-models", "axis-model-zoo")
        assert model["within_budget"] == (model["latency_ms"]["p50"] <= first["budget_ms"])
    points = [Point(m["model"], m["latency_ms"]["p50"], m["accuracy"]["value"]) for m in first["models"]]
    expected = choose_within(points, first["budget_ms"])
    assert (first["choice"] or {}).get("model") == (expected.model if expected else None)
    assert first["frontier"] == [p.model for p in pareto_frontier(points)]
    if first["choice"]:
        assert first["choice"]["command"][:4] == ["edgenet", "classify", "--model", expected.model]
    cache_file = first["cache"]
    assert os.path.isfile(cache_file) and cache_file.startswith(str(home))

    second = document(choose(home, "--budget-ms", "1000", *THREE, *QUICK, "-f", "json"))
    assert {m["measured"] for m in second["models"]} == {"cache"}
    assert {m["model"]: m["latency_ms"] for m in second["models"]} == {
        m["model"]: m["latency_ms"] for m in first["models"]
    }
    assert second["choice"]["model"] == max(points, key=lambda p: p.accuracy).model  # all fit in 1 s

    refreshed = document(choose(home, *THREE, *QUICK, "--refresh", "-f", "json"))
    assert {m["measured"] for m in refreshed["models"]} == {"now"} and refreshed["choice"] is None


def test_other_photos_are_a_cache_miss(tmp_path, images):
    home, photos = tmp_path / "home", tmp_path / "photos"
    photos.mkdir()
    for name in ("cat.bmp", "parrot.jpg"):
        (photos / name).write_bytes((images / name).read_bytes())
    document(choose(home, "-m", "v1-0.25-128", *QUICK, "-f", "json"))
    other = document(choose(home, "-m", "v1-0.25-128", "--images", str(photos), *QUICK, "-f", "json"))
    assert other["models"][0]["measured"] == "now"
    again = document(choose(home, "-m", "v1-0.25-128", "--images", str(photos), *QUICK, "-f", "json"))
    assert again["models"][0]["measured"] == "cache"


def test_every_local_pretrained_classifier_is_measured_and_the_others_listed(tmp_path):
    from edgenet import bench, zoo

    run = choose(tmp_path / "home", "--fps", "30", *QUICK, env={"COLUMNS": "80"})
    assert run.returncode == 0, run.stderr
    full = document(choose(tmp_path / "home", "--fps", "30", *QUICK, "-f", "json"))
    classifiers = {s.name for s in zoo.catalog().values() if s.task == "classify" and not s.latency_only}
    local = set(bench.local_models())
    assert {m["model"] for m in full["models"]} == classifiers & local
    assert {m["model"] for m in full["not_measured"]} == classifiers - local  # v1, v3-edgetpu: not mirrored
    assert all(m["pull"] == f"edgenet models pull {m['model']}" for m in full["not_measured"])
    # fetching was tried (offline here: the mirror lacks them, upstream is unreachable), and said why
    missing = full["not_measured"]
    assert all(m["reason"] == "cannot fetch it here" and "cannot fetch" in m["error"] for m in missing)
    kept_here = document(choose(tmp_path / "home", "--fps", "30", *QUICK, "--no-pull", "-f", "json"))
    assert {m["reason"] for m in kept_here["not_measured"]} == {"not here (--no-pull)"}
    assert not any("error" in m for m in kept_here["not_measured"])
    no_figure = {m["model"] for m in full["models"] if m["accuracy"] is None}
    assert no_figure == {"v2-keras", "v2-inat-bird"}  # no published figure for these exact weights
    assert "not measured: v1 " in run.stderr and "top-1 %" in run.stderr
    if full["choice"]:
        assert f"use it: edgenet classify --model {full['choice']['model']} " in run.stderr
    lines = [line for line in run.stderr.splitlines() if not line.startswith(("warning", "use it: "))]
    assert all(len(line) <= 80 for line in lines)


def test_eval_takes_accuracy_from_the_users_labelled_photos(tmp_path, imagenet_folder):
    home = tmp_path / "home"
    run = choose(
        home,
        "--fps",
        "30",
        "-m",
        "v1-0.25-128",
        "-m",
        "v2",
        "--eval",
        str(imagenet_folder),
        *QUICK,
        "-f",
        "json",
    )
    found = document(run)
    for model in found["models"]:
        reference = json.loads(
            run_cli("eval", str(imagenet_folder), "-m", model["model"], "-f", "json").stdout
        )
        assert model["accuracy"]["source"] == "eval"
        assert model["accuracy"]["value"] == pytest.approx(reference["top1"] * 100)
        assert model["accuracy"]["images"] == reference["images"] == 11
    again = choose(
        home, "-m", "v1-0.25-128", "-m", "v2", "--eval", str(imagenet_folder), *QUICK, "-f", "json"
    )
    assert "evaluating" not in again.stderr  # evaluated once per model and folder
    assert [m["accuracy"] for m in document(again)["models"]] == [m["accuracy"] for m in found["models"]]


@pytest.fixture
def imagenet_folder(tmp_path, images, mirror):
    """An ImageNet-style folder (class folders by WordNet id, file-name prefixes) from the shared photos."""
    from test_eval import TRUTH

    labels = (mirror / "imagenet_labels.txt").read_text().splitlines()
    wnids = (mirror / "labels" / "imagenet_wnids.txt").read_text().split()
    root = tmp_path / "val"
    root.mkdir()
    for i, (photo, label) in enumerate(sorted(TRUTH.items())):
        wnid = wnids[labels.index(label) - 1]
        target = root / wnid / photo if i % 2 else root / f"{wnid}_{photo}"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes((images / photo).read_bytes())
    return root


def test_detect_is_its_own_frontier_with_measured_map(tmp_path):
    coco = SHARED / "datasets" / "coco-permissive"
    run = choose(tmp_path / "home", "--task", "detect", "-m", "ssd-v1", "--fps", "30", *QUICK, "-f", "json")
    found = document(run)
    assert [m["model"] for m in found["models"]] == ["ssd-v1"] and found["task"] == "detect"
    assert found["models"][0]["accuracy"] is None and found["choice"] is None  # no published mAP for it
    evaluated = document(
        choose(
            tmp_path / "home", "--task", "detect", "-m", "ssd-v1", "--eval", str(coco), *QUICK, "-f", "json"
        )
    )
    reference = json.loads(
        run_cli("eval", str(coco), "--task", "detect", "-m", "ssd-v1", "-f", "json").stdout
    )
    assert evaluated["models"][0]["accuracy"]["value"] == pytest.approx(reference["map"])
    assert evaluated["models"][0]["measured"] == "cache"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fps", "30", "--budget-ms", "20"), "not both"),
        (("--fps", "0"), "positive"),
        (("-m", "ssd-v1"), "choose --task detect"),
        (("-m", "v1-random"), "random weights"),
        (("-m", "no-such-model"), "unknown model"),
        (("--plot", "frontier.gif"), ".png, .svg or .pdf"),
        (("--images", "/nonexistent"), "not a folder"),
        (("--eval", "/nonexistent"), "not a folder"),
    ],
)
def test_usage_errors_are_one_line_exit_2_before_anything_is_measured(tmp_path, args, message):
    run = choose(tmp_path / "home", *args, *QUICK)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "home" / "choose").exists()


def test_a_model_that_cannot_run_is_its_own_error_and_exit_code(tmp_path):
    one = choose(tmp_path / "home", "-m", "v1-0.25-128", "--delegate", "edgetpu", *QUICK)
    assert one.returncode == 4 and "no Edge TPU found" in one.stderr
    assert [line for line in one.stderr.splitlines() if not line.startswith("measuring")] == [
        line for line in one.stderr.splitlines() if line.startswith("edgenet: error:")
    ]
    both = choose(tmp_path / "home", *THREE, "--delegate", "edgetpu", *QUICK)
    assert both.returncode == 4 and both.stderr.count("warning: ") == 3  # each model said, then the error


def test_plot_without_the_extra_is_one_line_naming_it(tmp_path):
    fake = tmp_path / "site"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    run = choose(tmp_path / "home", "--plot", str(tmp_path / "f.png"), *QUICK, env={"PYTHONPATH": str(fake)})
    assert run.returncode == 2 and "pip install 'edgenet[plot]'" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "home" / "choose").exists()


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_draws_the_frontier(tmp_path, suffix):
    pytest.importorskip("matplotlib", reason="the plot extra (pip install -e '.[plot]') is not installed")
    picture = tmp_path / f"frontier.{suffix}"
    run = choose(tmp_path / "home", "--fps", "30", *THREE, *QUICK, "--plot", str(picture))
    assert run.returncode == 0, run.stderr
    head = picture.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in head


def test_a_plot_that_cannot_be_written_is_exit_4_after_the_report(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (pip install -e '.[plot]') is not installed")
    taken = tmp_path / "taken.png"
    taken.mkdir()  # a folder where the picture should go
    run = choose(tmp_path / "home", "--fps", "30", *THREE, *QUICK, "--plot", str(taken))
    assert run.returncode == 4 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(f"edgenet: error: cannot write the plot {taken}")
    assert "choice for 30 fps" in run.stdout + run.stderr  # the report came first


def test_sigterm_stops_cleanly_keeping_what_was_measured(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "EDGENET_HOME": str(home)}
    command = [
        sys.executable,
        "-m",
        "edgenet",
        "choose",
        *THREE,
        "--runs",
        "5",
        "--seconds",
        "4",
        "-f",
        "json",
    ]
    process = subprocess.Popen(
        command, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    measured: dict = {}
    while not measured and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        for path in (home / "choose").glob("*.json") if (home / "choose").is_dir() else []:
            measured = json.loads(path.read_text())["latency"]
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert measured, err.decode()
    assert process.returncode == 130, err.decode()
    assert out == b"" and "interrupted (SIGTERM)" in err.decode() and "Traceback" not in err.decode()
    kept = json.loads(next((home / "choose").glob("*.json")).read_text())["latency"]
    assert set(measured) <= set(kept) and len(kept) < 3
    resumed = document(choose(home, *THREE, *QUICK, "-f", "json"))
    assert {m["model"] for m in resumed["models"] if m["measured"] == "cache"} == set(kept)
