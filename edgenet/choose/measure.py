"""What `edgenet choose` measures: the candidates of a task, one model's end-to-end latency (edgenet.bench's
e2e mode: decode, preprocess, invoke, postprocess over real photos) and its accuracy, published or evaluated
on the user's labelled folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgenet.choices import BenchMode, Delegate, Task
from edgenet.errors import UsageError

# The published figure that stands for accuracy, by task (edgenet/data/published.json's metric).
ACCURACY_METRIC = {Task.classify: "top1", Task.detect: "coco_map"}
ACCURACY_NAME = {Task.classify: "top-1", Task.detect: "mAP"}


@dataclass(frozen=True)
class Candidate:
    """A real, pretrained zoo model of the task."""

    name: str
    sha: str | None  # the catalog's checksum of the file: a cached figure is for this file only
    local: bool  # in the cache or the mirror folder: can be measured without the network
    labels: str  # "imagenet", "embedded", "coco"


@dataclass(frozen=True)
class Settings:
    """How every model is run and timed: the same for all, so that their latencies compare."""

    threads: int
    delegate: Delegate = Delegate.auto
    runs: int = 30
    min_seconds: float = 2.0
    warmup: int = 3


def candidates(task: Task, only: tuple[str, ...] = ()) -> list[Candidate]:
    """The catalog's pretrained models of `task` (random-weight builds left out), or the ones named."""
    from edgenet import bench, zoo

    specs = zoo.catalog()
    for name in only:
        spec = zoo.get_spec(name)  # an unknown name: a usage error naming the close ones
        if spec.latency_only:
            raise UsageError(f"{name} has random weights (latency only): choose compares pretrained models")
        if spec.task != task.value:
            raise UsageError(f"{name} is a {spec.task} model; choose --task {spec.task} compares those")
    local = set(bench.local_models())
    chosen = only or tuple(s.name for s in specs.values() if s.task == task.value and not s.latency_only)
    found = []
    for name in dict.fromkeys(chosen):
        artifact = specs[name].artifact
        checksum = artifact.sha256 or artifact.git_sha1 or (str(artifact.size) if artifact.size else None)
        found.append(Candidate(name, checksum, name in local, specs[name].labels))
    return found


def measure_latency(
    candidate: Candidate,
    settings: Settings,
    photos: list[str],
    photos_fingerprint: str,
    *,
    host_facts: dict,
    on_warning: Callable[[str], None],
    check_stop: Callable[[], None],
) -> dict:
    """One model end to end over the photos (bench_one, e2e mode): the cache entry."""
    from edgenet import bench

    result = bench.bench_one(
        candidate.name,
        threads=settings.threads,
        delegate=settings.delegate,
        mode=BenchMode.e2e,
        images=photos,
        runs=settings.runs,
        min_seconds=settings.min_seconds,
        warmup=settings.warmup,
        host_facts=host_facts,
        on_warning=on_warning,
        check_stop=check_stop,
    )
    record = result.to_dict()
    return {
        "model": candidate.name,
        "model_sha": candidate.sha,
        "file": record["file"],
        "images": photos_fingerprint,
        "image_count": len(photos),
        "backend": record["backend"],
        "backend_version": record["backend_version"],
        "threads": record["threads"],
        "delegate": record["delegate"],
        "delegate_reason": record["delegate_reason"],
        "runs": record["runs"],
        "seconds": record["seconds"],
        "init_ms": record["init_ms"],
        "latency_ms": record["latency_ms"],
        "stages": record["stages"],
        "loadavg_1m": record["host"].get("loadavg_1m"),
        "time": record["time"],
    }


def published_accuracy(model: str, task: Task) -> dict | None:
    """The published accuracy of these exact weights (published.json), a verified figure first."""
    from edgenet import bench_report

    metric = ACCURACY_METRIC[task]
    figures = [f for f in bench_report.published_for(model) if f["metric"] == metric]
    if not figures:
        return None
    figure = sorted(figures, key=lambda f: not f.get("verified"))[0]
    return {
        "value": float(figure["value"]),
        "source": figure["source"],
        "where": figure.get("where", ""),
        "verified": bool(figure.get("verified")),
        "url": figure["url"],
    }


def evaluated_accuracy(model: str, folder: str, settings: Settings, task: Task, stop) -> dict:
    """Top-1 (classify) or COCO mAP (detect) of `model` on the labelled `folder`, through `edgenet eval`'s
    code (edgenet.evaluate / edgenet.evaluate_detection), percent."""
    from edgenet.model import ModelRequest, open_model
    from edgenet.tasks.classification import ClassifyOptions
    from edgenet.tasks.detection import DetectOptions

    request = ModelRequest(model=model, threads=settings.threads, delegate=settings.delegate)
    if task == Task.detect:
        from edgenet.evaluate_detection import evaluate_detection

        report = evaluate_detection(folder, open_model(request, DetectOptions()), "auto", stop=stop)
        value = report["map"]
        extra = {"ap50": report["ap50"], "images": report["images"], "objects": report["objects"]}
    else:
        from edgenet.evaluate import evaluate_folder

        report = evaluate_folder(folder, open_model(request, ClassifyOptions(top_k=5)), stop=stop)
        value = report["top1"] * 100.0
        extra = {
            "top5": report["top5"] * 100.0,
            "images": report["images"],
            "unlabelled": report["unlabelled"],
        }
    return {"value": value, "source": "eval", "errors": report["errors"], **extra}
