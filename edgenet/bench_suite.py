"""A bench run: every (model, thread count) of a plan timed by edgenet.bench, records written as they come,
then the table, the fastest thread counts and the regression gate. SIGINT/SIGTERM stop it between (and
inside) configurations: the records written so far are complete."""

from __future__ import annotations

from dataclasses import dataclass

from edgenet.choices import BenchFormat, BenchMode, Delegate
from edgenet.console import say, warn
from edgenet.errors import EXIT_INTERRUPTED, EdgenetError, Interrupted, UsageError


@dataclass(frozen=True)
class BenchPlan:
    models: tuple[str, ...] = ()
    all_models: bool = False
    threads: str | None = None  # "1,2,4"
    delegate: Delegate = Delegate.auto
    device: str = ""
    delegate_lib: str | None = None
    delegate_options: tuple[tuple[str, str], ...] = ()
    runs: int = 50
    min_seconds: float = 1.0
    warmup: int = 5
    mode: BenchMode = BenchMode.invoke
    images: str | None = None
    format: BenchFormat = BenchFormat.table
    output: str | None = None
    compare: str | None = None
    tolerance: float = 0.30


def _names(plan: BenchPlan) -> list[str]:
    from edgenet import bench, zoo

    names = list(plan.models)
    if plan.all_models:
        names += [name for name in bench.local_models() if name not in names]
        if not names:
            raise UsageError(
                "--all found no local model: pull some (edgenet models pull NAME) or set "
                "EDGENET_MODEL_MIRROR to a folder of models"
            )
    return names or [zoo.default_model()]


def _thread_counts(plan: BenchPlan) -> list[int]:
    from edgenet import bench
    from edgenet.runtime import MAX_DEFAULT_THREADS, check_threads, default_threads

    counts = bench.parse_threads(plan.threads)
    if counts is None:
        counts = [default_threads()]
        say(
            f"threads: {counts[0]} (default: usable cores, at most {MAX_DEFAULT_THREADS}; "
            "--threads 1,2,4 measures others)"
        )
    for count in counts:
        check_threads(count)
    return counts


def run_bench(plan: BenchPlan) -> int:
    from edgenet import bench, bench_report
    from edgenet.run.stop import StopSignals
    from edgenet.sources import expand_inputs

    data_format = bench_report.format_for_output(plan.format, plan.output)
    reference = bench_report.read_reference(plan.compare) if plan.compare else None
    counts = _thread_counts(plan)
    names = _names(plan)
    paths: list[str] = []
    if plan.mode == BenchMode.e2e:
        paths = expand_inputs([plan.images]) if plan.images else bench.default_images()
        if not paths:
            raise UsageError(f"no images found in {plan.images} (looked for .jpg .jpeg .png .bmp .webp .tif)")
    wants_records = plan.output or plan.format != BenchFormat.table
    writer = bench_report.record_sink(data_format, plan.output) if wants_records else None
    records: list[dict] = []
    failures: list[EdgenetError] = []
    with StopSignals() as stop:
        try:
            _measure(plan, names, counts, paths, records, failures, writer, stop)
        except KeyboardInterrupt:  # a second Ctrl-C
            stop.request("SIGINT")
        except Interrupted:  # a stop between or inside configurations: what was measured is written
            pass
        except BaseException:
            if writer and not records:  # the one configuration failed: its error, and no empty array
                writer.output.close()
                writer = None
            raise
        finally:
            if writer:
                writer.close()
    return _report(plan, records, failures, reference, interrupted=bool(stop))


def _measure(plan, names, counts, paths, records, failures, writer, stop) -> None:
    from edgenet import bench

    host_facts = bench.host.host_info()
    warned: set[str] = set()

    def warn_once(message: str) -> None:
        if message not in warned:
            warned.add(message)
            warn(message)

    single = len(names) * len(counts) == 1
    for name in names:
        for count in counts:
            stop.check()
            try:
                result = bench.bench_one(
                    name,
                    threads=count,
                    delegate=plan.delegate,
                    device=plan.device,
                    delegate_lib=plan.delegate_lib,
                    delegate_options=plan.delegate_options,
                    mode=plan.mode,
                    images=paths,
                    runs=plan.runs,
                    min_seconds=plan.min_seconds,
                    warmup=plan.warmup,
                    host_facts=host_facts,
                    on_warning=warn_once,
                    check_stop=stop.check,
                )
            except Interrupted:
                raise
            except EdgenetError as error:
                if single:
                    raise
                failures.append(error)
                warn(f"{name} with {count} thread(s): {error}")
                continue
            record = result.to_dict()
            records.append(record)
            if writer:
                writer.write_record(record)


def _report(plan: BenchPlan, records, failures, reference, *, interrupted: bool) -> int:
    from edgenet import bench_report

    if plan.format == BenchFormat.table and records:
        bench_report.render_table(records)
    for (model_name, used, _mode), (best, p50) in bench_report.fastest_threads(records).items():
        say(f"{model_name} on {used}: fastest with {best} thread(s) here (p50 {p50:.3f} ms)")
    if interrupted:
        say("interrupted: the records above are complete and flushed", "yellow")
        return EXIT_INTERRUPTED
    if failures and not records:
        raise failures[-1]
    exit_code = 1 if failures else 0
    if reference is not None:
        compared, regressed = bench_report.compare(records, reference, plan.tolerance)
        if not compared:
            raise UsageError(
                f"--compare {plan.compare}: no row matches these runs "
                "(same model, delegate, threads and mode)"
            )
        for row in regressed:
            say(
                f"REGRESSED {row['model']} {row['delegate']} threads {row['threads']} {row['mode']}: p50 "
                f"{row['p50_ms']:.3f} ms vs {row['reference_p50_ms']:.3f} ms ({row['ratio']:.2f}x, tolerance "
                f"{plan.tolerance:.0%})",
                "red",
            )
        say(f"compare: {len(compared)} row(s) checked against {plan.compare}, {len(regressed)} regressed")
        if regressed:
            exit_code = 1
    return exit_code
