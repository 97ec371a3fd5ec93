"""`edgenet doctor`: runs here without a traceback, reads fake sysfs/dev trees, each check says the fix."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from fixtures import fake_edgetpu

from edgenet import doctor, edgetpu

fake_tree = fake_edgetpu.fake_tree  # pytest fixtures, shared with the other Edge TPU tests
delegate_libs = fake_edgetpu.delegate_libs

STATUSES = ("ok", "warn", "fail")


def by_name(checks) -> dict:
    return {check.name: check for check in checks}


def test_doctor_runs_on_this_machine(cli):
    """No fake tree: the real /sys and /dev of this machine (which has no Edge TPU)."""
    result = cli("doctor")
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == len(doctor.CHECKS)
    assert all(line.split(" ", 1)[0] in STATUSES for line in lines), lines
    failed = [line for line in lines if line.startswith("fail")]
    assert result.returncode == (1 if failed else 0), result.stdout
    assert any(line.startswith(("ok   backend", "fail backend")) for line in lines)


def test_doctor_json(fake_tree, cli):
    result = cli("doctor", "--format", "json", env=fake_tree.env)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = json.loads(result.stdout)
    assert [c["check"] for c in checks][:3] == ["backend", "numpy", "python"]
    assert {c["status"] for c in checks} <= set(STATUSES)
    assert by_name(doctor.run_checks())["edgetpu"].status == "warn"  # nothing plugged in


def test_tpu_without_libedgetpu_fails_with_the_fix(fake_tree, cli):
    if edgetpu.find_library():
        pytest.skip(f"this machine has a real libedgetpu ({edgetpu.find_library()}); the test needs none")
    fake_tree.usb("2-1", "18d1", "9302", speed="480")
    result = cli("doctor", env=fake_tree.env)
    assert result.returncode == 1
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines()}
    assert lines["fail libedgetpu"].endswith(edgetpu.INSTALL_HINT)
    assert "USB 2" in lines["warn edgetpu"] and "USB 3" in lines["warn edgetpu"]


def test_crashing_libedgetpu_is_reported(fake_tree, monkeypatch, delegate_libs):
    fake_tree.pci(0)
    monkeypatch.setenv("EDGENET_LIBEDGETPU", str(delegate_libs["crash"]))
    check = by_name(doctor.run_checks())["delegate"]
    assert check.status == "fail" and "SIGSEGV" in check.message
    monkeypatch.setenv("EDGENET_LIBEDGETPU", str(delegate_libs["fake"]))
    assert by_name(doctor.run_checks())["delegate"].status == "ok"


def test_facts_from_the_fake_tree(fake_tree):
    fake_tree.governor("powersave")
    fake_tree.thermal(83500)
    fake_tree.board("Raspberry Pi 5 Model B Rev 1.0")
    host = doctor.gather()
    assert host.governors == ["powersave"] and host.soc_temp_c == 83.5 and host.is_pi
    checks = by_name(doctor.run_checks(host))
    assert checks["cpu governor"].status == "warn" and "performance" in checks["cpu governor"].fix
    assert checks["temperature"].status == "warn" and "83.5 C" in checks["temperature"].message


def test_pi5_16k_pages_with_pcie_coral(fake_tree):
    fake_tree.pci(0)
    fake_tree.board("Raspberry Pi 5 Model B Rev 1.0")
    host = replace(doctor.gather(), page_size=16384)
    check = doctor.check_page_size(host)
    assert check.status == "fail" and "kernel=kernel8.img" in check.fix
    usb_only = replace(host, tpus=[t for t in host.tpus if t.type == "usb"])
    assert doctor.check_page_size(usb_only).status == "ok"
    assert doctor.check_page_size(replace(host, page_size=4096)).status == "ok"


def test_pcie_module_without_driver(fake_tree):
    fake_tree.pci_function()
    check = by_name(doctor.run_checks())["edgetpu"]
    assert check.status == "fail" and "gasket" in check.fix


def test_permissions(fake_tree):
    fake_tree.usb("2-1", "18d1", "9302", bus=2, number=7)
    fake_tree.usb("3-1", "1a6e", "089a", bus=3, number=4, node=False)
    host = doctor.gather()
    node = str(fake_tree.dev / "bus/usb/002/007")
    assert host.node_access[node] == "ok"
    assert doctor.check_permissions(host).status == "warn"  # 3-1 has no device file
    denied = replace(
        host, node_access={node: "denied"}, groups=["users"], udev_rules={"usb": None, "pci": None}
    )
    check = doctor.check_permissions(denied)
    assert (
        check.status == "fail"
        and "not in group plugdev" in check.message
        and "usermod -aG plugdev" in check.fix
    )
    apex = replace(denied, node_access={"/dev/apex_0": "denied"})
    assert "65-apex.rules" in doctor.check_permissions(apex).fix


def test_numpy2_with_tflite_runtime(fake_tree):
    host = replace(
        doctor.gather(),
        packages={"numpy": "2.1.0", "tflite-runtime": "2.14.0"},
        backend="ai_edge_litert 2.3.0",
    )
    check = doctor.check_numpy(host)
    assert check.status == "warn" and "numpy<2" in check.fix
    assert (
        doctor.check_numpy(replace(host, packages={"numpy": "1.26.4", "tflite-runtime": "2.14.0"})).status
        == "ok"
    )


def test_picamera2_and_throttling(fake_tree):
    fake_tree.board("Raspberry Pi 4 Model B Rev 1.5")
    host = doctor.gather()
    assert doctor.check_picamera2(replace(host, picamera2="system only")).fix.startswith("recreate the venv")
    assert doctor.check_picamera2(replace(host, picamera2="not installed")).status == "warn"
    throttled = replace(host, throttled={"raw": "0x50005", "flags": ["under-voltage now", "throttled now"]})
    assert doctor.check_throttling(throttled).status == "warn"
    assert doctor.check_throttling(replace(host, throttled={"raw": "0x0", "flags": []})).status == "ok"


def test_a_broken_check_becomes_a_warn_line(fake_tree):
    host = replace(doctor.gather(), packages={"numpy": None, "tflite-runtime": "2.14.0"})  # not a version
    checks = by_name(doctor.run_checks(host))
    assert checks["numpy"].status == "warn" and "could not check" in checks["numpy"].message


def test_doctor_fails_when_the_model_cache_cannot_be_made(cli, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    run = cli("doctor", env={"EDGENET_HOME": str(blocker)})
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert any(line.startswith("fail") and "is a file" in line for line in run.stdout.splitlines())
