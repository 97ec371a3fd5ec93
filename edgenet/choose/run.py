"""A choose run: the candidates measured (or taken from the cache), their accuracy found, the report.

SIGINT/SIGTERM stop it between models and inside a measurement (edgenet.run.stop): every model measured
before is already in the cache file, which is rewritten after each one, and the exit code is 130.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from edgenet.choices import Delegate, ReportFormat, Task
from edgenet.console import say, terminal_width, warn
from edgenet.errors import EXIT_INTERRUPTED, EdgenetError, Interrupted, ModelError, UsageError


@dataclass(frozen=True)
class ChoosePlan:
    task: Task = Task.classify
    fps: float | None = None
    budget_ms: float | None = None
    images: str | None = None  # photos to time on (default: bench's default photos)
    eval_folder: str | None = None  # the user's labelled photos: accuracy measured, not published
    models: tuple[str, ...] = ()  # only these (default: every pretrained model of the task)
    threads: int | None = None  # default: what classify would use (usable cores minus one, 1 to 4)
    delegate: Delegate = Delegate.auto
    refresh: bool = False
    pull: bool = True  # fetch the models that are not here yet (the mirror, then upstream)
    runs: int = 30
    min_seconds: float = 2.0
    warmup: int = 3
    format: ReportFormat = ReportFormat.table
    plot: str | None = None


def _photos(plan: ChoosePlan) -> list[str]:
    from edgenet import bench
    from edgenet.sources import expand_inputs

    if plan.images is None:
        return bench.default_images()
    if not os.path.isdir(plan.images):
        raise UsageError(f"--images {plan.images} is not a folder; give a folder of photos to time on")
    found = expand_inputs([plan.images])
    if not found:
        raise UsageError(f"no images found in {plan.images} (looked for .jpg .jpeg .png .bmp .webp .tif)")
    return found


def _check(plan: ChoosePlan):
    """Everything that can be refused is refused before the first measurement."""
    from edgenet.choose.chart import check_plot_target
    from edgenet.choose.frontier import budget_from
    from edgenet.choose.measure import Settings
    from edgenet.runtime import check_threads, default_threads

    budget = budget_from(plan.fps, plan.budget_ms)
    if plan.plot:
        check_plot_target(plan.plot)
    if plan.eval_folder is not None and not os.path.isdir(plan.eval_folder):
        raise UsageError(f"--eval {plan.eval_folder} is not a folder; give a folder of labelled photos")
    check_threads(plan.threads)
    threads = plan.threads or default_threads(pipeline=True)
    settings = Settings(threads, plan.delegate, plan.runs, plan.min_seconds, plan.warmup)
    return budget, settings


def _open_cache(settings):
    from edgenet import host, zoo
    from edgenet.choose.cache import MeasurementCache, cache_key
    from edgenet.runtime import load_backend

    backend = load_backend()
    facts = host.host_info()
    edgetpus = 0
    if settings.delegate in (Delegate.auto, Delegate.edgetpu):
        from edgenet.edgetpu import find_edgetpus

        edgetpus = len(find_edgetpus())
    key = cache_key(facts, backend.name, backend.version, settings.threads, settings.delegate.value, edgetpus)
    cache = MeasurementCache.open(zoo.home(), key)
    if cache.problem:
        warn(cache.problem)
    return cache, facts


def run_choose(plan: ChoosePlan) -> int:
    from edgenet.choose.cache import files_fingerprint
    from edgenet.choose.measure import candidates
    from edgenet.run.stop import StopSignals

    budget, settings = _check(plan)
    photos = _photos(plan)
    found = candidates(plan.task, plan.models)
    cache, facts = _open_cache(settings)
    state = _State(cache, settings, photos, files_fingerprint(photos), facts)
    with StopSignals() as stop:
        try:
            for number, candidate in enumerate(found, 1):
                stop.check()
                state.latency(candidate, number, len(found), plan, stop)
            for entry in state.measured:
                stop.check()
                _accuracy(entry, plan, state, stop)
        except KeyboardInterrupt:  # a second Ctrl-C
            stop.request("SIGINT")
        except Interrupted:
            pass
    if stop:
        say(
            f"interrupted ({stop.why}): {len(state.measured)} model(s) measured and kept in {cache.path}; "
            "run again to measure the rest",
            "yellow",
        )
        return EXIT_INTERRUPTED
    return _report(plan, budget, settings, state)


class _State:
    """What a run has so far: the measured models, those left out, the failures."""

    def __init__(self, cache, settings, photos, fingerprint, facts):
        self.cache, self.settings, self.photos, self.fingerprint, self.facts = (
            cache,
            settings,
            photos,
            fingerprint,
            facts,
        )
        self.measured: list[dict] = []
        self.not_measured: list[dict] = []
        self.failed: list[dict] = []
        self.errors: list[EdgenetError] = []
        self._warned: set[str] = set()
        self._cache_failed = False

    def warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warn(message)

    def not_here(self, name: str, reason: str, error: str | None = None) -> None:
        entry = {"model": name, "reason": reason, "pull": f"edgenet models pull {name}"}
        self.not_measured.append(entry if error is None else {**entry, "error": error})

    def store(self, put, *args) -> None:
        try:
            put(*args)
        except OSError as exc:
            if not self._cache_failed:
                self._cache_failed = True
                warn(f"cannot write the cache {self.cache.path} ({exc.strerror}); the figures are not kept")

    def latency(self, candidate, number: int, total: int, plan: ChoosePlan, stop) -> None:
        from edgenet.choose.measure import measure_latency

        cached = (
            None if plan.refresh else self.cache.latency_for(candidate.name, candidate.sha, self.fingerprint)
        )
        if cached is not None:
            self.measured.append({**cached, "from": "cache"})
            return
        if not candidate.local and not plan.pull:
            self.not_here(candidate.name, "not here (--no-pull)")
            return
        verb = "measuring" if candidate.local else "fetching and measuring"
        say(f"{verb} {candidate.name} ({number}/{total}) end to end on {len(self.photos)} photo(s)...")
        try:
            entry = measure_latency(
                candidate,
                self.settings,
                self.photos,
                self.fingerprint,
                host_facts=self.facts,
                on_warning=self.warn_once,
                check_stop=stop.check,
            )
        except Interrupted:
            raise
        except EdgenetError as error:
            if total == 1:
                raise  # the one model asked for: its error is the command's
            if not candidate.local and isinstance(error, ModelError):  # offline: not a failure of the model
                self.not_here(candidate.name, "cannot fetch it here", str(error))
                return
            self.failed.append({"model": candidate.name, "error": str(error)})
            self.errors.append(error)
            warn(f"{candidate.name}: {error}")
            return
        self.store(self.cache.put_latency, candidate.name, entry)
        self.measured.append({**entry, "from": "now"})


def _accuracy(entry: dict, plan: ChoosePlan, state: _State, stop) -> None:
    """The model's accuracy: evaluated on --eval DIR (cached per folder), else the published figure."""
    from edgenet.choose.measure import evaluated_accuracy, published_accuracy

    name = entry["model"]
    if plan.eval_folder is None:
        entry["accuracy"] = published_accuracy(name, plan.task)
        if entry["accuracy"] is None:
            entry["accuracy_note"] = "none published"
        return
    from edgenet.choose.cache import files_fingerprint
    from edgenet.sources import expand_inputs

    folder = os.path.abspath(plan.eval_folder)
    fingerprint = files_fingerprint(expand_inputs([folder]), root=folder, with_times=True)
    cached = None if plan.refresh else state.cache.accuracy_for(name, entry["model_sha"], fingerprint)
    if cached is not None:
        entry["accuracy"] = cached
        return
    say(f"evaluating {name} on {plan.eval_folder}...")
    try:
        accuracy = evaluated_accuracy(name, folder, state.settings, plan.task, stop)
    except Interrupted:
        raise
    except UsageError as error:  # e.g. no photo names a class this model knows
        entry["accuracy"], entry["accuracy_note"] = None, "eval: no labelled photo for it"
        state.warn_once(f"{name}: {error}")
        return
    if accuracy["value"] is None:  # a detector on a folder without objects
        entry["accuracy"], entry["accuracy_note"] = None, "eval: no objects"
        return
    accuracy = {**accuracy, "folder": folder, "model_sha": entry["model_sha"]}
    state.store(state.cache.put_accuracy, name, fingerprint, accuracy)
    entry["accuracy"] = accuracy


def _report(plan: ChoosePlan, budget, settings, state: _State) -> int:
    from edgenet.choose import report

    if not state.measured and state.errors:
        raise state.errors[-1]  # nothing measured: the last model's error, with its exit code
    if plan.eval_folder is not None:
        accuracy_from = f"measured on {plan.eval_folder} (edgenet eval)"
    else:
        accuracy_from = "published ImageNet top-1" if plan.task == Task.classify else "published COCO mAP"
        accuracy_from += " (edgenet/data/published.json; --eval DIR measures your own)"
    document = report.build_document(
        task=plan.task,
        fps=plan.fps,
        budget_ms=budget,
        measured=state.measured,
        not_measured=state.not_measured,
        failed=state.failed,
        settings=settings,
        cache_key=state.cache.key,
        cache_path=str(state.cache.path),
        accuracy_from=accuracy_from,
    )
    if plan.format == ReportFormat.json:
        print(json.dumps(document), flush=True)
    else:
        for line in report.text_report(document, width=min(terminal_width(), 100)):
            say(line)
    if plan.plot and not report.chart_points(document):
        warn(f"--plot {plan.plot}: no model has both a latency and an accuracy, so there is nothing to draw")
    elif plan.plot:
        from edgenet.choose.chart import save_plot

        where = document["host"]
        title = (
            f"{plan.task.value}: {where['cpu_model'] or where['machine']}, {settings.threads} thread(s), "
            f"{where['backend']} {where['backend_version']}"
        )
        name = "top-1" if plan.task == Task.classify else "mAP"
        save_plot(report.chart_points(document), plan.plot, budget_ms=budget, title=title, accuracy_name=name)
        say(f"frontier drawn in {plan.plot}")
    return 1 if state.failed else 0
