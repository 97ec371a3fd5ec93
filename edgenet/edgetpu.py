"""Edge TPU discovery and delegate loading.

USB accelerators show up under /sys/bus/usb/devices as 1a6e:089a (before the first inference loads the
firmware) or 18d1:9302 (after); PCIe/M.2 modules as /dev/apex_N. Roots are injectable for tests:
EDGENET_SYSFS_ROOT (default /sys) and EDGENET_DEV_ROOT (default /dev).
"""

from __future__ import annotations

import ctypes.util
import glob
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgenet.errors import DeviceError, UsageError

USB_IDS = {("1a6e", "089a"): "usb (firmware not loaded yet)", ("18d1", "9302"): "usb"}
LIBEDGETPU = "libedgetpu.so.1"


@dataclass(frozen=True)
class EdgeTpu:
    type: str  # "usb" or "pci"
    path: str  # sysfs device folder or /dev/apex_N
    speed: int | None = None  # USB link speed in Mb/s (480 = USB 2)
    temperature_c: float | None = None
    id: str | None = None  # vendor:product for USB

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def sysfs_root() -> Path:
    return Path(os.environ.get("EDGENET_SYSFS_ROOT", "/sys"))


def dev_root() -> Path:
    return Path(os.environ.get("EDGENET_DEV_ROOT", "/dev"))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def find_edgetpus() -> list[EdgeTpu]:
    """All Edge TPUs visible: USB first (sysfs order), then PCIe (apex_0, apex_1, ...)."""
    found: list[EdgeTpu] = []
    usb_root = sysfs_root() / "bus" / "usb" / "devices"
    for device in sorted(usb_root.glob("*")) if usb_root.is_dir() else []:
        vendor, product = _read(device / "idVendor"), _read(device / "idProduct")
        if (vendor, product) in USB_IDS:
            speed = _read(device / "speed")
            found.append(EdgeTpu(type="usb", path=str(device), id=f"{vendor}:{product}",
                                 speed=int(float(speed)) if speed and speed.replace(".", "").isdigit() else None))
    for node in sorted(glob.glob(str(dev_root() / "apex_*")), key=_apex_number):
        name = os.path.basename(node)
        temp = _read(sysfs_root() / "class" / "apex" / name / "temp")
        found.append(EdgeTpu(type="pci", path=node,
                             temperature_c=int(temp) / 1000 if temp and temp.lstrip("-").isdigit() else None))
    return found


def _apex_number(node: str) -> int:
    tail = node.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 1 << 30


def parse_device(device: str) -> tuple[str | None, int | None]:
    """pycoral device strings: "" (any), ":N", "usb", "usb:N", "pci", "pci:N" -> (type, index)."""
    device = (device or "").strip()
    if device == "":
        return None, None
    kind, _, number = device.partition(":")
    if kind not in ("", "usb", "pci") or (number and not number.isdigit()) or (kind == "" and not number):
        raise UsageError(f"bad --device {device!r}; use '', ':N', 'usb', 'usb:N', 'pci' or 'pci:N'")
    return (kind or None), (int(number) if number else None)


def select(device: str, tpus: list[EdgeTpu]) -> EdgeTpu | None:
    kind, index = parse_device(device)
    candidates = [t for t in tpus if kind is None or t.type == kind]
    if index is None:
        return candidates[0] if candidates else None
    return candidates[index] if index < len(candidates) else None


def find_library() -> str | None:
    """Where libedgetpu.so.1 is, or None. EDGENET_LIBEDGETPU overrides."""
    explicit = os.environ.get("EDGENET_LIBEDGETPU")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib/arm-linux-gnueabihf",
                   "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib"):
        candidate = os.path.join(folder, LIBEDGETPU)
        if os.path.exists(candidate):
            return candidate
    return ctypes.util.find_library("edgetpu")


def require_library() -> str:
    library = find_library()
    if library is None:
        raise DeviceError(
            f"{LIBEDGETPU} (the Edge TPU runtime) is not installed; install libedgetpu1-std from Coral's apt "
            "repository (https://coral.ai/software/#debian-packages), or run on the CPU with --delegate xnnpack"
        )
    return library
