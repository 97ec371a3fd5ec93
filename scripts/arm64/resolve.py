"""What `pip install .` would pick on a board, resolved on this machine: a dry run of pip with the board's
wheel tags and the board's marker environment, printed as one JSON object {"install": {name: version}}.

    python scripts/arm64/resolve.py armv7l   # 32-bit Raspberry Pi OS bookworm (Python 3.11)
    python scripts/arm64/resolve.py aarch64  # 64-bit Raspberry Pi OS bookworm (Python 3.11)
    python scripts/arm64/resolve.py aarch64 --extra dev --format requirements  # NAME==VERSION lines

pip's --platform/--python-version only choose wheel tags: environment markers (platform_machine,
python_version) are still evaluated for the machine pip runs on. So pip runs here with its marker
environment set to the board's, which is what pip on the board evaluates.

Packages the board gets from apt (`--system-site` NAME==VERSION, as python3-numpy on Pi OS) are registered
as installed, the way Debian's dist-packages are, so pip keeps them, as it does on the board.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BOARDS = {
    # uname -m of the board -> the wheel platform tags its pip accepts (glibc 2.36 on bookworm)
    "armv7l": ["linux_armv7l", "manylinux2014_armv7l"] + [f"manylinux_2_{m}_armv7l" for m in range(17, 37)],
    "aarch64": ["linux_aarch64", "manylinux2014_aarch64"]
    + [f"manylinux_2_{m}_aarch64" for m in range(17, 37)],
}

SHIM = """
import site, sys
hidden = {{*site.getsitepackages(), site.getusersitepackages()}}
sys.path[:] = [*{paths!r}, *(p for p in sys.path if p not in hidden)]
from pip._vendor.packaging import markers
host = markers.default_environment
markers.default_environment = lambda: {{**host(), **{board!r}}}
from pip._internal.cli.main import main
sys.exit(main({args!r}))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_environment(machine: str, python: str) -> dict[str, str]:
    return {
        "platform_machine": machine,
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def system_site(folder: Path, packages: list[str]) -> None:
    """A dist-packages folder where each NAME==VERSION is installed as far as pip can tell (metadata)."""
    for spec in packages:
        name, version = spec.split("==")
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("debian\n")


def resolve(
    machine: str, python: str = "3.11", system: list[str] = (), project: Path = ROOT, extra: str = ""
) -> dict:
    """{"install": {name: version}, "environment": {...}} as pip's --report says for the board."""
    import pip

    tags = [arg for tag in BOARDS[machine] for arg in ("--platform", tag)]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "dist-packages"
        pip_home = Path(tmp) / "pip-only"
        pip_home.mkdir()
        (pip_home / "pip").symlink_to(Path(pip.__file__).parent)
        system_site(site, list(system))
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--quiet", "--report", str(report), "--only-binary=:all:"]
        args += [*tags, "--python-version", python, "--implementation", "cp"]
        args.append(f"{project}[{extra}]" if extra else str(project))
        code = SHIM.format(
            paths=[str(site), str(pip_home)], board=marker_environment(machine, python), args=args
        )
        # the shim hides this machine's site-packages, so pip sees only the board's system packages
        env = dict(os.environ, PIP_NO_WARN_SCRIPT_LOCATION="1", PYTHONNOUSERSITE="1")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if done.returncode != 0 and "platform or abi specific options" in done.stderr:
            raise SystemExit(
                f"pip {pip.__version__} cannot resolve for another platform without --target: upgrade it "
                f"({sys.executable} -m pip install -U pip; make venv does)"
            )
        if done.returncode != 0:
            last = [line for line in done.stderr.splitlines() if line.strip()][-3:]
            raise SystemExit(f"pip could not resolve edgenet for {machine}: {' | '.join(last)}")
        data = json.loads(report.read_text())
    return {
        "install": {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in data["install"]},
        "environment": data["environment"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("machine", choices=sorted(BOARDS))
    parser.add_argument("--python", default="3.11", help="the board's Python (3.11 on Pi OS bookworm)")
    parser.add_argument(
        "--system-site", action="append", default=[], metavar="NAME==VERSION", help="installed by apt"
    )
    parser.add_argument("--extra", default="", help="an optional dependency group too (dev)")
    parser.add_argument("--format", choices=("json", "requirements"), default="json")
    options = parser.parse_args()
    result = resolve(options.machine, options.python, options.system_site, extra=options.extra)
    if options.format == "requirements":  # pinned, for `pip download --no-deps -r`
        pins = [f"{name}=={version}" for name, version in result["install"].items() if name != "edgenet"]
        print("\n".join(pins))
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
