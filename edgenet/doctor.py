"""`edgenet doctor`: one line per check, ok / warn / fail, and the fix.

The facts are gathered once (`gather`, from the injectable sysfs/dev roots, this Python, the backend) into a
`Host`; every check is a pure function of the `Host`, so tests can build the situations no machine here has
(a Pi 5 with 16K pages, a TPU this user may not open) from a real gathered `Host` with fields replaced.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgenet import edgetpu
from edgenet import host as facts

OK, WARN, FAIL = "ok", "warn", "fail"
UDEV_RULE_DIRS = ("/etc/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d")
MIN_FREE_MB = 200  # a few models with their Edge TPU twins
HOT_C = 80.0  # Pi firmware starts soft throttling at 80 C; the apex driver's first trip point is 85 C


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.message}"
        return f"{text} -> {self.fix}" if self.fix and self.status != OK else text

    def to_dict(self) -> dict:
        return {"check": self.name, "status": self.status, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class Host:
    python: tuple[int, int, int]
    machine: str
    board: str | None  # "Raspberry Pi 5 Model B Rev 1.0", from the device tree
    page_size: int
    backend: str | None  # "ai_edge_litert 2.3.0"
    backend_error: str | None
    packages: dict  # distribution -> version, for numpy, tflite-runtime, ai-edge-litert, pycoral
    tpus: list
    unbound_pci: list[str]
    library: dict  # edgetpu.library_info()
    node_access: dict  # device node -> "ok" (this user can read and write it), "denied" or "missing"
    groups: list[str]
    udev_rules: dict  # "usb" / "pci" -> rule file found, or None
    governors: list[str]
    soc_temp_c: float | None
    throttled: dict | None  # host.throttled_state(): {"raw": "0x0", "flags": [...]}
    picamera2: str  # host.picamera2_status(): "importable", "system only" or "not installed"
    models_dir: str
    free_mb: float | None
    is_root: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def is_pi(self) -> bool:
        return bool(self.board and "raspberry pi" in self.board.lower())


# -- gathering -------------------------------------------------------------------------------------


def _dist_versions(names) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _udev_rules(dirs=UDEV_RULE_DIRS) -> dict:
    found: dict = {"usb": None, "pci": None}
    for folder in dirs:
        try:
            files = sorted(Path(folder).glob("*.rules"))
        except OSError:
            continue
        for rule in files:
            try:
                text = rule.read_text(errors="replace").lower()
            except OSError:
                continue
            if found["usb"] is None and ("1a6e" in text or ("18d1" in text and "9302" in text)):
                found["usb"] = str(rule)
            if found["pci"] is None and "apex" in text:
                found["pci"] = str(rule)
    return found


def _backend() -> tuple[str | None, str | None]:
    from edgenet.errors import EdgenetError
    from edgenet.runtime import load_backend

    try:
        backend = load_backend()
    except EdgenetError as exc:
        return None, str(exc)
    return f"{backend.name} {backend.version}", None


def gather() -> Host:
    """Everything the checks look at, read once from this machine (honouring EDGENET_SYSFS_ROOT/_DEV_ROOT)."""
    from edgenet import zoo

    sysfs = facts.sysfs_root()
    backend_text, backend_error = _backend()
    tpus = edgetpu.find_edgetpus()
    models_dir = zoo.home() / "models"
    return Host(
        python=tuple(sys.version_info[:3]),
        machine=platform.machine(),
        board=facts.board_model(sysfs),
        page_size=facts.page_size(),
        backend=backend_text,
        backend_error=backend_error,
        packages=_dist_versions(("numpy", "tflite-runtime", "ai-edge-litert", "pycoral", "tensorflow")),
        tpus=tpus,
        unbound_pci=edgetpu.find_pci_without_driver(),
        library=edgetpu.library_info(),
        node_access={t.node: facts.access(t.node) for t in tpus if t.node},
        groups=facts.group_names(),
        udev_rules=_udev_rules(),
        governors=facts.governors(sysfs),
        soc_temp_c=facts.soc_temperature_c(sysfs),
        throttled=facts.throttled_state(sysfs),
        picamera2=facts.picamera2_status(),
        models_dir=str(models_dir),
        free_mb=facts.free_mb(models_dir),
        is_root=facts.is_root(),
    )


# -- checks ------------------------------------------------------------------------------------------


def check_backend(host: Host) -> Check:
    if host.backend_error:
        return Check(
            "backend",
            FAIL,
            host.backend_error.split(";")[0],
            "pip install ai-edge-litert (in this venv), or see the hint above",
        )
    return Check("backend", OK, f"{host.backend} imports")


def check_numpy(host: Host) -> Check:
    numpy_version = host.packages.get("numpy", "?")
    tflite_runtime = host.packages.get("tflite-runtime")
    if tflite_runtime and numpy_version.split(".")[0].isdigit() and int(numpy_version.split(".")[0]) >= 2:
        using_it = bool(host.backend and host.backend.startswith("tflite_runtime"))
        if not using_it:
            return Check(
                "numpy",
                WARN,
                f"numpy {numpy_version} with tflite-runtime {tflite_runtime} installed: "
                "tflite-runtime wheels are built for numpy 1 and will not import (unused now)",
                "pip uninstall tflite-runtime, or pip install 'numpy<2' if you need it",
            )
    return Check(
        "numpy",
        OK,
        f"numpy {numpy_version}" + (f", tflite-runtime {tflite_runtime}" if tflite_runtime else ""),
    )


def check_python(host: Host) -> Check:
    version = ".".join(map(str, host.python))
    minor = host.python[:2]
    notes = []
    if minor > (3, 11):
        notes.append("tflite-runtime has no wheels past 3.11")
    if minor > (3, 9):
        notes.append("pycoral has none past 3.9 (edgenet does not need it)")
    if host.backend_error and minor > (3, 11):
        return Check(
            "python",
            FAIL,
            f"Python {version}: no backend, and {'; '.join(notes)}",
            "pip install ai-edge-litert, or use Python 3.11 for the tflite-runtime path",
        )
    return Check(
        "python", OK, f"Python {version} on {host.machine}" + (f" ({'; '.join(notes)})" if notes else "")
    )


def check_library(host: Host) -> Check:
    info = host.library
    if info.get("found"):
        version = f" ({info['version']})" if info.get("version") else ""
        return Check("libedgetpu", OK, f"{info['path']}{version}")
    if os.environ.get("EDGENET_LIBEDGETPU"):
        return Check(
            "libedgetpu",
            FAIL,
            f"EDGENET_LIBEDGETPU={os.environ['EDGENET_LIBEDGETPU']} is not a file",
            "fix the path or unset EDGENET_LIBEDGETPU",
        )
    if host.tpus or host.unbound_pci:
        return Check(
            "libedgetpu",
            FAIL,
            f"{edgetpu.LIBEDGETPU} is not installed, so the Edge TPU cannot be used",
            edgetpu.INSTALL_HINT,
        )
    return Check("libedgetpu", OK, f"{edgetpu.LIBEDGETPU} not installed (only needed with an Edge TPU)")


def check_library_loads(host: Host) -> Check:
    """With a TPU and the library present, load it once in a child process: a crash there is the
    libedgetpu-built-for-another-TFLite problem."""
    if not (host.tpus and host.library.get("found") and host.backend):
        return Check("delegate", OK, "not tried (needs an Edge TPU, libedgetpu and a backend)")
    from edgenet.delegates import probe_external_delegate
    from edgenet.errors import EdgenetError

    try:
        probe_external_delegate(host.library["path"], None, None, name=edgetpu.LIBEDGETPU, timeout=60)
    except EdgenetError as exc:
        return Check(
            "delegate",
            FAIL,
            str(exc),
            f"use a libedgetpu built for {host.backend}, or the backend "
            "it was built for (EDGENET_BACKEND=tflite_runtime with the matching tflite-runtime)",
        )
    return Check("delegate", OK, f"{edgetpu.LIBEDGETPU} loads with {host.backend}")


def check_tpus(host: Host) -> Check:
    if host.unbound_pci:
        return Check(
            "edgetpu",
            FAIL,
            f"Coral PCIe module at {host.unbound_pci[0]} has no apex driver (no /dev/apex_N)",
            "install gasket-dkms from Coral's apt repository; on recent kernels "
            "where it fails to build, build a maintained fork of google/gasket-driver; then reboot",
        )
    if not host.tpus:
        return Check(
            "edgetpu",
            WARN,
            f"no Edge TPU visible (looked for {edgetpu.looked_for()})",
            "plug the USB accelerator in (a USB 3 port), or seat the M.2/PCIe module; models run on "
            "the CPU meanwhile",
        )
    names = ", ".join(
        f"{t.type} {os.path.basename(t.path)}" + (f" {t.speed} Mb/s" if t.speed else "") for t in host.tpus
    )
    slow = [t for t in host.tpus if t.usb2]
    if slow:
        return Check(
            "edgetpu",
            WARN,
            f"{len(host.tpus)} found ({names}); {slow[0].path} is on USB 2: throughput roughly halves",
            "use a USB 3 port and cable (blue port on a Pi 4/5)",
        )
    return Check("edgetpu", OK, f"{len(host.tpus)} found ({names})")


def check_permissions(host: Host) -> Check:
    if not host.node_access:
        return Check("permissions", OK, "no Edge TPU device file to check")
    missing = [node for node, state in host.node_access.items() if state == "missing"]
    denied = [node for node, state in host.node_access.items() if state == "denied"]
    if not denied and not missing:
        return Check(
            "permissions", OK, f"{len(host.node_access)} Edge TPU device file(s) readable and writable"
        )
    if not denied:
        return Check(
            "permissions",
            WARN,
            f"{missing[0]} does not exist although sysfs lists the Edge TPU",
            "unplug and replug it; in a container, pass /dev/bus/usb (or /dev/apex_N) through",
        )
    node = denied[0]
    if "apex" in node:
        rule = host.udev_rules.get("pci")
        fix = (
            "sudo groupadd -f apex && sudo usermod -aG apex $USER; "
            + (
                ""
                if rule
                else 'echo \'SUBSYSTEM=="apex", MODE="0660", GROUP="apex"\' | sudo tee '
                "/etc/udev/rules.d/65-apex.rules; "
            )
            + "then reboot"
        )
        group = "apex"
    else:
        rule = host.udev_rules.get("usb")
        fix = (
            "sudo usermod -aG plugdev $USER"
            + (
                ""
                if rule
                else " and install libedgetpu1-std, which ships the udev rule for 1a6e:089a and 18d1:9302"
            )
            + "; then unplug/replug and log in again"
        )
        group = "plugdev"
    in_group = "in" if group in host.groups else "not in"
    return Check(
        "permissions",
        FAIL,
        f"cannot open {node} (this user is {in_group} group {group}; udev rule: {rule or 'none found'})",
        fix,
    )


def check_page_size(host: Host) -> Check:
    pcie = any(t.type == "pci" for t in host.tpus) or bool(host.unbound_pci)
    kib = host.page_size // 1024
    if host.page_size != 4096 and pcie:
        return Check(
            "page size",
            FAIL,
            f"{kib}K pages with a PCIe Coral: the apex driver needs 4K pages",
            "on a Raspberry Pi 5 add 'kernel=kernel8.img' (and 'dtoverlay=pciex1-compat-pi5,no-mip') to "
            "/boot/firmware/config.txt and reboot",
        )
    if host.page_size != 4096 and host.board and "raspberry pi 5" in host.board.lower():
        return Check(
            "page size", OK, f"{kib}K pages (Pi 5 default): fine for USB; a PCIe Coral would need kernel8.img"
        )
    return Check("page size", OK, f"{kib}K pages")


def check_governor(host: Host) -> Check:
    if not host.governors:
        return Check("cpu governor", OK, "not exposed here (VM or container): nothing to tune")
    slow = [g for g in host.governors if g in ("powersave", "conservative")]
    if slow:
        return Check(
            "cpu governor",
            WARN,
            f"{', '.join(host.governors)}: latency will be higher and noisier",
            "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
        )
    return Check("cpu governor", OK, ", ".join(host.governors))


def check_throttling(host: Host) -> Check:
    if host.throttled is None:
        what = "Raspberry Pi firmware not reachable" if host.is_pi else "not a Raspberry Pi"
        return Check("throttling", OK, f"{what}: no throttling flags to read")
    flags = host.throttled.get("flags") or []
    if flags:
        return Check(
            "throttling",
            WARN,
            f"{host.throttled.get('raw')}: {', '.join(flags)}",
            "use the official power supply (5 V 3 A, 5 A on a Pi 5) and a heatsink or fan",
        )
    return Check("throttling", OK, f"{host.throttled.get('raw', '0x0')}: never throttled since boot")


def check_temperature(host: Host) -> Check:
    readings = []
    if host.soc_temp_c is not None:
        readings.append(("SoC", host.soc_temp_c))
    readings += [
        (os.path.basename(t.path), t.temperature_c) for t in host.tpus if t.temperature_c is not None
    ]
    if not readings:
        return Check("temperature", OK, "no thermal sensor exposed here")
    text = ", ".join(f"{name} {value:.1f} C" for name, value in readings)
    if any(value >= HOT_C for _, value in readings):
        return Check(
            "temperature",
            WARN,
            f"{text}: hot enough to throttle",
            "add cooling (heatsink/fan); the Edge TPU slows itself down above 85 C",
        )
    return Check("temperature", OK, text)


def check_picamera2(host: Host) -> Check:
    if host.picamera2 == "importable":
        return Check("picamera2", OK, "importable from this Python")
    if host.picamera2 == "system only":
        return Check(
            "picamera2",
            WARN,
            f"installed system-wide but not visible from {sys.prefix}",
            "recreate the venv with --system-site-packages (picamera2 comes from apt, not pip)",
        )
    if host.is_pi:
        return Check(
            "picamera2",
            WARN,
            "not installed: Pi cameras (CSI) will not work, USB cameras will",
            "sudo apt install python3-picamera2, and a venv made with --system-site-packages",
        )
    return Check("picamera2", OK, "not installed (not a Raspberry Pi: OpenCV cameras only)")


def _blocking_file(folder) -> str | None:
    """The first part of the model cache's path that exists but is not a folder (the cache cannot be made)."""
    from pathlib import Path

    for part in [Path(folder), *Path(folder).parents]:
        if part.exists():
            return None if part.is_dir() else str(part)
    return None


def check_disk(host: Host) -> Check:
    blocking = _blocking_file(host.models_dir)
    if blocking is not None:
        return Check(
            "disk",
            FAIL,
            f"the model cache {host.models_dir} cannot be created: {blocking} is a file",
            "point EDGENET_HOME at a folder",
        )
    if host.free_mb is None:
        return Check(
            "disk",
            WARN,
            f"cannot tell the free space for {host.models_dir}",
            "set EDGENET_HOME to a writable folder",
        )
    text = f"{host.free_mb:,.0f} MB free for models in {host.models_dir}"
    if host.free_mb < MIN_FREE_MB:
        return Check(
            "disk",
            WARN if host.free_mb >= 20 else FAIL,
            text,
            "free some space, or set EDGENET_HOME to a bigger disk",
        )
    return Check("disk", OK, text)


CHECKS: tuple[Callable[[Host], Check], ...] = (
    check_backend,
    check_numpy,
    check_python,
    check_library,
    check_tpus,
    check_library_loads,
    check_permissions,
    check_page_size,
    check_governor,
    check_throttling,
    check_temperature,
    check_picamera2,
    check_disk,
)


def run_checks(host: Host | None = None) -> list[Check]:
    """Every check, in order; one that breaks unexpectedly becomes a warn line instead of a traceback."""
    host = host or gather()
    results = []
    for check in CHECKS:
        try:
            results.append(check(host))
        except Exception as exc:
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(Check(name, WARN, f"could not check: {type(exc).__name__}: {exc}"))
    return results


def devices_report() -> dict:
    """What `edgenet devices` prints: Edge TPUs, CPU, backend, libedgetpu."""
    backend_text, backend_error = _backend()
    name, _, version = (backend_text or "").partition(" ")
    report = {
        "edgetpus": [t.to_dict() for t in edgetpu.find_edgetpus()],
        "cpu": {
            "model": facts.cpu_model(),
            "machine": platform.machine(),
            "cores": os.cpu_count(),
            "board": facts.board_model(),
        },
        "backend": {"name": name, "version": version}
        if backend_text
        else {"name": None, "error": backend_error},
        "libedgetpu": edgetpu.library_info(),
    }
    unbound = edgetpu.find_pci_without_driver()
    if unbound:
        report["pci_without_driver"] = unbound
    return report
