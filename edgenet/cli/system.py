"""`edgenet devices` and `edgenet doctor`: what this machine has, and what to fix."""

from __future__ import annotations

import json

import typer

from edgenet.choices import DoctorFormat, ReportFormat
from edgenet.cli.common import AUTO_FORMAT_HELP, for_stdout, handles_errors


@handles_errors
def devices(
    fmt: ReportFormat | None = typer.Option(
        None, "--format", "-f", help=f"Report as {AUTO_FORMAT_HELP}.", show_default=False
    ),
):
    """Edge TPUs (USB and PCIe), CPU, TFLite backend, and whether libedgetpu is installed."""
    from edgenet.doctor import devices_report

    report = devices_report()
    if for_stdout(fmt, ReportFormat.table, ReportFormat.json) == ReportFormat.json:
        print(json.dumps(report, indent=1))
        return
    tpus = report["edgetpus"]
    print(f"Edge TPUs: {len(tpus) or 'none found'}")
    for index, tpu in enumerate(tpus):
        slow = " (USB 2: about half the throughput)" if tpu.get("speed", 5000) <= 480 else ""
        details = [
            f"{tpu['speed']} Mb/s{slow}" if "speed" in tpu else "",
            tpu.get("id", ""),
            f"{tpu['temperature_c']:.1f} C" if "temperature_c" in tpu else "",
        ]
        print(f"  :{index}  {tpu['type']:<3}  {tpu['path']}  " + "  ".join(d for d in details if d))
    for function in report.get("pci_without_driver", []):
        print(f"  PCIe Coral at {function} without its apex driver (edgenet doctor)")
    cpu, backend, library = report["cpu"], report["backend"], report["libedgetpu"]
    print(
        f"CPU: {cpu['model'] or '?'} ({cpu['machine']}, {cpu['cores']} cores)"
        + (f" on {cpu['board']}" if cpu.get("board") else "")
    )
    print(
        f"backend: {backend['name']} {backend['version']}"
        if backend.get("name")
        else f"backend: none ({backend['error']})"
    )
    print(
        f"libedgetpu: {library['path']}" + (f" ({library['version']})" if library.get("version") else "")
        if library["found"]
        else "libedgetpu: not installed"
    )


@handles_errors
def doctor(fmt: DoctorFormat = typer.Option(DoctorFormat.text, "--format", "-f", help="Report as.")):
    """Check this machine for edgenet: one line per check (ok / warn / fail) and the fix. Exit 1 on a fail."""
    from edgenet.doctor import FAIL, run_checks

    checks = run_checks()
    if fmt == DoctorFormat.json:
        print(json.dumps([check.to_dict() for check in checks], indent=1))
    else:
        for check in checks:
            print(check.line(), flush=True)
    raise typer.Exit(1 if any(check.status == FAIL for check in checks) else 0)
