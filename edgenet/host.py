"""Facts about this machine, read in one place: sysfs and /proc, CPU governors and temperatures, the board,
groups, cores, disk, video devices and picamera2.

Every reader takes its root as a parameter (or honours EDGENET_SYSFS_ROOT / EDGENET_DEV_ROOT), so tests can
point it at a fake tree. Nothing here imports another edgenet module: every layer may use it.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
from pathlib import Path

SYSTEM_PICAMERA2 = ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages")
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


def sysfs_root() -> Path:
    return Path(os.environ.get("EDGENET_SYSFS_ROOT") or "/sys")


def dev_root() -> Path:
    return Path(os.environ.get("EDGENET_DEV_ROOT") or "/dev")


def read_text(path: Path) -> str | None:
    """A sysfs or /proc file, stripped (NULs too: device-tree strings end in one); None if unreadable."""
    try:
        return path.read_text(errors="replace").strip().strip("\x00").strip()
    except OSError:
        return None


def read_number(path: Path) -> float | None:
    text = read_text(path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


# -- CPU and board ------------------------------------------------------------------------------------


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_model(proc_root: Path = Path("/proc")) -> str | None:
    """'model name' (x86, most arm64 kernels), else 'Hardware' / 'Processor' / 'cpu model' lines."""
    text = read_text(proc_root / "cpuinfo")
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


def board_model(sysfs: Path | None = None, proc_root: Path = Path("/proc")) -> str | None:
    """The device tree's model string ("Raspberry Pi 4 Model B Rev 1.4"), or None on PCs and VMs."""
    sysfs = sysfs or sysfs_root()
    places = (proc_root / "device-tree" / "model", sysfs / "firmware" / "devicetree" / "base" / "model")
    for path in places:
        text = read_text(path)
        if text:
            return text.replace("\x00", "").strip()
    return None


def governors(sysfs: Path | None = None) -> list[str]:
    """The distinct scaling governors of the CPUs, sorted (empty in VMs and containers)."""
    sysfs = sysfs or sysfs_root()
    paths = sorted(sysfs.glob("devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"))
    return sorted({text for text in (read_text(path) for path in paths) if text})


def soc_temperature_c(sysfs: Path | None = None) -> float | None:
    """The CPU/SoC thermal zone (cpu-thermal on a Pi, x86_pkg_temp on Intel), else the first readable one."""
    sysfs = sysfs or sysfs_root()
    readings = []
    for zone in sorted((sysfs / "class" / "thermal").glob("thermal_zone*")):
        raw = read_text(zone / "temp")
        if not raw or not raw.lstrip("-").isdigit():
            continue
        kind = (read_text(zone / "type") or "").lower()
        preferred = any(word in kind for word in ("cpu", "soc", "pkg", "k10temp", "tctl"))
        readings.append((not preferred, int(raw) / 1000.0))
    if not readings:
        return None
    return round(sorted(readings, key=lambda item: item[0])[0][1], 1)


def decode_throttled(value: int) -> list[str]:
    """Raspberry Pi firmware's get_throttled bit field -> the flags that are set, in words."""
    return [words for bit, words in sorted(THROTTLED_BITS.items()) if value & (1 << bit)]


def throttled_state(sysfs: Path | None = None, use_vcgencmd: bool | None = None) -> dict | None:
    """Raspberry Pi throttling flags, from sysfs (newer kernels) or `vcgencmd get_throttled`; else None.
    vcgencmd is asked only about the real /sys (not a test tree), unless `use_vcgencmd` says otherwise."""
    sysfs = sysfs or sysfs_root()
    if use_vcgencmd is None:
        use_vcgencmd = sysfs == Path("/sys")
    raw = read_text(sysfs / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled")
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


def apex_temperature_c(name: str, sysfs: Path | None = None) -> float | None:
    """A PCIe Edge TPU's temperature (/sys/class/apex/apex_N/temp, millidegrees)."""
    millidegrees = read_number((sysfs or sysfs_root()) / "class" / "apex" / name / "temp")
    return round(millidegrees / 1000, 1) if millidegrees is not None else None


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def is_32bit_arm() -> bool:
    """32-bit Raspberry Pi OS and the like: armv6l/armv7l/armv8l, or a 64-bit kernel under a 32-bit Python."""
    import sys

    machine = platform.machine().lower()
    return machine in ("armv6l", "armv7l", "armv8l") or (machine == "aarch64" and sys.maxsize < 2**32)


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def host_info(sysfs: Path | None = None, proc_root: Path = Path("/proc")) -> dict:
    """What does not change during a run: machine, CPU, board, cores, Python, governor."""
    sysfs = sysfs or sysfs_root()
    found = governors(sysfs)
    return {
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "cpu_model": cpu_model(proc_root),
        "board": board_model(sysfs, proc_root),
        "cpu_count": os.cpu_count(),
        "cores_usable": usable_cores(),
        "python": platform.python_version(),
        "governor": ",".join(found) if found else None,
    }


# -- users, disks, cameras ----------------------------------------------------------------------------


def group_names() -> list[str]:
    """The names of this process's groups, sorted."""
    try:
        import grp
    except ImportError:
        return []
    names = set()
    for gid in set(os.getgroups()) | {os.getgid()}:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return sorted(names)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def free_mb(folder: Path) -> float | None:
    """Free space on the disk that holds `folder` (or its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free / 1e6
    except OSError:
        return None


def access(node: str) -> str:
    """ "ok" when this user can read and write a device node, "denied", or "missing"."""
    if not os.path.exists(node):
        return "missing"
    return "ok" if os.access(node, os.R_OK | os.W_OK) else "denied"


def video_devices(dev: Path | None = None) -> list[str]:
    """/dev/video* nodes, sorted."""
    return sorted(glob.glob(os.path.join(str(dev or "/dev"), "video*")))


def picamera2_status() -> str:
    """ "importable" (this Python can use it), "system only" (installed for the system Python, not visible
    here: the venv lacks --system-site-packages) or "not installed"."""
    import importlib.util

    try:
        if importlib.util.find_spec("picamera2") is not None:
            return "importable"
    except (ImportError, ValueError):
        pass
    if any(os.path.isdir(os.path.join(base, "picamera2")) for base in SYSTEM_PICAMERA2):
        return "system only"
    return "not installed"
