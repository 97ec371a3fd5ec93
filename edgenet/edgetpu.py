"""Edge TPU discovery, device strings and finding libedgetpu.

USB accelerators show up under /sys/bus/usb/devices as 1a6e:089a (before the first inference loads the
firmware) or 18d1:9302 (after); PCIe/M.2 modules as /dev/apex_N once the gasket/apex driver is bound (the PCI
function itself, 1ac1:089a, is visible under /sys/bus/pci/devices even without the driver). Roots are
injectable for tests: EDGENET_SYSFS_ROOT (default /sys) and EDGENET_DEV_ROOT (default /dev).

Nothing here loads a library: runtime.load_external_delegate does, through the TFLite backend.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from pathlib import Path

from edgenet.errors import DeviceError, UsageError
from edgenet.host import apex_temperature_c, dev_root, read_number, read_text, sysfs_root
from edgenet.lightclass import lightclass

USB_IDS = {("1a6e", "089a"): "firmware not loaded yet", ("18d1", "9302"): "firmware loaded"}
PCI_IDS = {("0x1ac1", "0x089a")}
LIBEDGETPU = "libedgetpu.so.1"
LIBEDGETPU_PACKAGES = (
    "libedgetpu1-std",
    "libedgetpu1-max",
    "libedgetpu1-legacy-std",
    "libedgetpu1-legacy-max",
)
LIBRARY_FOLDERS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/arm-linux-gnueabihf",
    "/usr/lib",
    "/usr/local/lib",
    "/opt/homebrew/lib",
)
LOOKED_FOR = "USB 1a6e:089a or 18d1:9302 under {sysfs}/bus/usb/devices, PCIe {dev}/apex_N"
INSTALL_HINT = (
    "install libedgetpu1-std from Coral's apt repository (https://coral.ai/software/#debian-packages) "
    "or set EDGENET_LIBEDGETPU to the library's path"
)
DEVICE_FORMS = "'' (any), ':N', 'usb', 'usb:N', 'pci' or 'pci:N'"


@lightclass
class EdgeTpu:
    type: str  # "usb" or "pci"
    path: str  # sysfs device folder (USB) or /dev/apex_N (PCIe): the paths libedgetpu itself reports
    speed: int | None = None  # USB link speed in Mb/s (480 = USB 2, 5000 = USB 3)
    temperature_c: float | None = None  # PCIe only, from /sys/class/apex/apex_N/temp
    id: str | None = None  # vendor:product for USB
    node: str | None = None  # the device file the runtime opens: /dev/bus/usb/BBB/DDD or /dev/apex_N

    @property
    def usb2(self) -> bool:
        return self.type == "usb" and self.speed is not None and self.speed <= 480

    @property
    def state(self) -> str:
        if self.type == "usb":
            return USB_IDS.get(tuple((self.id or ":").split(":", 1)), "")
        return ""

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def looked_for() -> str:
    return LOOKED_FOR.format(sysfs=sysfs_root(), dev=dev_root())


def find_usb() -> list[EdgeTpu]:
    """USB accelerators in either state, in sysfs order (bus-port names sort stably)."""
    found = []
    usb_root = sysfs_root() / "bus" / "usb" / "devices"
    try:
        devices = sorted(usb_root.iterdir())
    except OSError:
        return []
    for device in devices:
        vendor, product = read_text(device / "idVendor"), read_text(device / "idProduct")
        if (vendor, product) not in USB_IDS:
            continue
        speed = read_number(device / "speed")
        bus, number = read_number(device / "busnum"), read_number(device / "devnum")
        node = (
            str(dev_root() / "bus" / "usb" / f"{int(bus):03d}" / f"{int(number):03d}")
            if bus and number
            else None
        )
        found.append(
            EdgeTpu(
                type="usb",
                path=str(device),
                id=f"{vendor}:{product}",
                speed=int(speed) if speed is not None else None,
                node=node,
            )
        )
    return found


def find_pci() -> list[EdgeTpu]:
    """PCIe/M.2 modules with a working driver: /dev/apex_0, /dev/apex_1, ..."""
    found = []
    try:
        nodes = [p for p in dev_root().iterdir() if re.fullmatch(r"apex_\d+", p.name)]
    except OSError:
        return []
    for node in sorted(nodes, key=lambda p: int(p.name.split("_")[1])):
        found.append(
            EdgeTpu(type="pci", path=str(node), node=str(node), temperature_c=apex_temperature_c(node.name))
        )
    return found


def find_edgetpus() -> list[EdgeTpu]:
    """All usable Edge TPUs: PCIe first, then USB."""
    return find_pci() + find_usb()


def find_pci_without_driver() -> list[str]:
    """PCI functions of a Coral module (1ac1:089a) whose apex driver is not bound: no /dev/apex_N for them."""
    pci_root = sysfs_root() / "bus" / "pci" / "devices"
    try:
        functions = sorted(pci_root.iterdir())
    except OSError:
        return []
    missing = []
    for function in functions:
        if (read_text(function / "vendor"), read_text(function / "device")) in PCI_IDS:
            driver = function / "driver"
            if not driver.exists() or "apex" not in os.path.basename(os.path.realpath(driver)):
                missing.append(str(function))
    return missing


def parse_device(device: str | None) -> tuple[str | None, int | None]:
    """pycoral device strings "" (any), ":N", "usb", "usb:N", "pci", "pci:N" -> (type, index), None = any."""
    text = (device or "").strip()
    if text == "":
        return None, None
    kind, colon, number = text.partition(":")
    valid = kind in ("", "usb", "pci") and (number.isdigit() if colon else kind != "")
    if not valid:
        raise UsageError(f"bad --device {device!r}; use {DEVICE_FORMS}")
    return (kind or None), (int(number) if number else None)


def select(device: str | None, tpus: list[EdgeTpu]) -> EdgeTpu | None:
    """The TPU a device string names (":N" counts PCIe first, then USB, like find_edgetpus), or None."""
    kind, index = parse_device(device)
    candidates = [t for t in tpus if kind is None or t.type == kind]
    if index is None:
        return candidates[0] if candidates else None
    return candidates[index] if index < len(candidates) else None


def require_tpu(
    device: str | None,
    wanted_by: str = "",
    tpus: list[EdgeTpu] | None = None,
    unbound: list[str] | None = None,
) -> EdgeTpu:
    """The TPU the device string names, or a DeviceError naming what was looked for and what was found.
    `tpus` and `unbound` (PCIe modules without their driver) are read from this machine when not given."""
    tpus = find_edgetpus() if tpus is None else list(tpus)
    chosen = select(device, tpus)
    if chosen is not None:
        return chosen
    reason = f" for {wanted_by}" if wanted_by else ""
    unbound = find_pci_without_driver() if unbound is None else list(unbound)
    if tpus:
        have = ", ".join(f"{t.type} {t.path}" for t in tpus)
        raise DeviceError(
            f"no Edge TPU matches --device {device!r}; found {len(tpus)}: {have}; "
            f"pick one with {DEVICE_FORMS}"
        )
    if unbound:
        raise DeviceError(
            f"no usable Edge TPU{reason}: a Coral PCIe module is at {unbound[0]} but its apex driver "
            "is not loaded (no /dev/apex_N); install gasket-dkms (edgenet doctor says how)"
        )
    raise DeviceError(
        f"no Edge TPU found{reason} (looked for {looked_for()}); plug one in and check "
        "`edgenet devices` / `edgenet doctor`, or run on the CPU with --delegate xnnpack"
    )


def find_library() -> str | None:
    """Where libedgetpu.so.1 is, or None. EDGENET_LIBEDGETPU overrides the search (even when it is wrong)."""
    explicit = os.environ.get("EDGENET_LIBEDGETPU")
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    for folder in LIBRARY_FOLDERS:
        for name in (LIBEDGETPU, "libedgetpu.1.dylib"):
            candidate = os.path.join(folder, name)
            if os.path.exists(candidate):
                return candidate
    import ctypes.util  # the linker's search (ldconfig), only when the usual folders do not hold it

    return ctypes.util.find_library("edgetpu")


def library_problem() -> str:
    """Why libedgetpu cannot be used, in one line (when find_library() found nothing)."""
    explicit = os.environ.get("EDGENET_LIBEDGETPU")
    if explicit:
        return (
            f"EDGENET_LIBEDGETPU points at {explicit}, which is not a file; fix the path or unset "
            f"it to use the installed {LIBEDGETPU}"
        )
    return (
        f"{LIBEDGETPU} (the Edge TPU runtime) is not installed; {INSTALL_HINT}; "
        "or run on the CPU with --delegate xnnpack"
    )


def require_library() -> str:
    library = find_library()
    if library is None:
        raise DeviceError(library_problem())
    return library


def library_version(library: str | None, dpkg_status: str = "/var/lib/dpkg/status") -> str | None:
    """The installed libedgetpu package and version ("libedgetpu1-std 16.0"), when dpkg knows it."""
    if library is None or os.environ.get("EDGENET_LIBEDGETPU"):
        return None
    try:
        text = Path(dpkg_status).read_text(errors="replace")
    except OSError:
        return None
    for stanza in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, flags=re.MULTILINE))
        if fields.get("Package") in LIBEDGETPU_PACKAGES and "installed" in fields.get("Status", "").split():
            return f"{fields['Package']} {fields.get('Version', '?')}"
    return None


def library_info() -> dict:
    library = find_library()
    info: dict = {"found": library is not None, "path": library}
    version = library_version(library)
    if version:
        info["version"] = version
    if os.environ.get("EDGENET_LIBEDGETPU"):
        info["from"] = "EDGENET_LIBEDGETPU"
    return info
