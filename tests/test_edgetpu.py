"""Edge TPU discovery from fake sysfs/dev trees, device strings, delegate selection, and loading real external
delegate libraries (compiled from tests/delegate/fake_delegate.c) through the libedgetpu code path."""

from __future__ import annotations

import ctypes.util
import json

import pytest
from fixtures import fake_edgetpu

from edgenet import edgetpu
from edgenet.delegates import load_external_delegate
from edgenet.errors import DeviceError, ModelError, UsageError
from edgenet.model import open_model

fake_tree = fake_edgetpu.fake_tree  # pytest fixtures, shared with the other Edge TPU tests
delegate_libs = fake_edgetpu.delegate_libs

IMAGE = "cat.bmp"


def one_line_error(result, code: int, *words: str) -> str:
    """The CLI failed with `code`, one line on stderr naming `words`, nothing on stdout, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgenet: error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])
    assert result.stdout == ""
    return errors[0]


def three_tpus(tree):
    tree.pci(0, millidegrees=51250)
    tree.usb("2-1", "1a6e", "089a", speed="480", bus=2, number=3)  # before the firmware is loaded, on USB 2
    tree.usb("4-1", "18d1", "9302", speed="5000", bus=4, number=2)  # after
    tree.other_usb()


# -- discovery --------------------------------------------------------------------------------------


def test_discovery_finds_pci_and_both_usb_ids(fake_tree):
    three_tpus(fake_tree)
    tpus = edgetpu.find_edgetpus()
    assert [(t.type, t.id) for t in tpus] == [("pci", None), ("usb", "1a6e:089a"), ("usb", "18d1:9302")]
    pci, usb2, usb3 = tpus
    assert pci.path.endswith("apex_0") and pci.temperature_c == 51.2
    assert usb2.speed == 480 and usb2.usb2 and usb2.state == "firmware not loaded yet"
    assert usb3.speed == 5000 and not usb3.usb2
    assert usb2.node == str(fake_tree.dev / "bus" / "usb" / "002" / "003")


def test_no_tpu_in_an_empty_tree(fake_tree):
    fake_tree.other_usb()
    assert edgetpu.find_edgetpus() == []
    with pytest.raises(DeviceError, match="no Edge TPU found"):
        edgetpu.require_tpu("")


def test_devices_json_lists_three(fake_tree, cli):
    three_tpus(fake_tree)
    result = cli("devices", "--format", "json", env=fake_tree.env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [t["type"] for t in report["edgetpus"]] == ["pci", "usb", "usb"]
    assert {t.get("id") for t in report["edgetpus"]} == {None, "1a6e:089a", "18d1:9302"}
    assert all(t["path"] for t in report["edgetpus"])
    assert report["backend"]["name"] and report["cpu"]["cores"] >= 1
    assert set(report["libedgetpu"]) >= {"found", "path"}


def test_devices_table_warns_about_usb2(fake_tree, cli):
    three_tpus(fake_tree)
    result = cli("devices", "-f", "table", env=fake_tree.env)
    assert result.returncode == 0, result.stderr
    assert "Edge TPUs: 3" in result.stdout
    assert "USB 2" in result.stdout and "apex_0" in result.stdout and "51.2 C" in result.stdout


def test_pci_module_without_driver(fake_tree):
    fake_tree.pci_function("0000:01:00.0")
    fake_tree.pci_function("0000:02:00.0", driver="apex")
    assert edgetpu.find_pci_without_driver() == [str(fake_tree.sys / "bus/pci/devices/0000:01:00.0")]
    with pytest.raises(DeviceError, match="apex driver is not loaded"):
        edgetpu.require_tpu("")


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("", (None, None)),
        (":1", (None, 1)),
        ("usb", ("usb", None)),
        ("usb:0", ("usb", 0)),
        ("pci", ("pci", None)),
        ("pci:2", ("pci", 2)),
    ],
)
def test_device_strings(text, parsed):
    assert edgetpu.parse_device(text) == parsed


@pytest.mark.parametrize("text", ["usb0", "tpu", ":", "usb:", "pci:x", ":-1", "usb:1:2"])
def test_bad_device_strings(text):
    with pytest.raises(UsageError, match="--device"):
        edgetpu.parse_device(text)


def test_select_counts_pci_first_then_usb(fake_tree):
    three_tpus(fake_tree)
    tpus = edgetpu.find_edgetpus()
    assert edgetpu.select("", tpus).type == "pci"
    assert edgetpu.select(":2", tpus).id == "18d1:9302"
    assert edgetpu.select("usb:1", tpus).id == "18d1:9302"
    assert edgetpu.select("usb", tpus).id == "1a6e:089a"
    assert edgetpu.select("pci:1", tpus) is None
    with pytest.raises(DeviceError, match="found 3"):
        edgetpu.require_tpu("pci:1")


def test_library_override_and_dpkg_version(tmp_path, monkeypatch, delegate_libs):
    monkeypatch.setenv("EDGENET_LIBEDGETPU", str(delegate_libs["fake"]))
    assert edgetpu.find_library() == str(delegate_libs["fake"])
    assert edgetpu.library_info()["from"] == "EDGENET_LIBEDGETPU"
    monkeypatch.setenv("EDGENET_LIBEDGETPU", str(tmp_path / "missing.so"))
    assert edgetpu.find_library() is None
    with pytest.raises(DeviceError, match="EDGENET_LIBEDGETPU points at"):
        edgetpu.require_library()
    monkeypatch.delenv("EDGENET_LIBEDGETPU")
    status = tmp_path / "status"
    status.write_text(
        "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\n\n"
        "Package: libedgetpu1-std\nStatus: install ok installed\nArchitecture: arm64\n"
        "Version: 16.0\n"
    )
    assert edgetpu.library_version("/usr/lib/libedgetpu.so.1", str(status)) == "libedgetpu1-std 16.0"


# -- loading external delegates ---------------------------------------------------------------------


def test_fake_delegate_loads_in_process_and_passes_options(tmp_path, monkeypatch, delegate_libs):
    log = tmp_path / "options.log"
    monkeypatch.setenv("FAKE_DELEGATE_LOG", str(log))
    delegate = load_external_delegate(str(delegate_libs["fake"]), {"device": "usb:1"})
    assert delegate is not None
    # once in the probe child, once here
    assert log.read_text().splitlines() == ["device=usb:1", "created", "device=usb:1", "created"]


def test_delegate_that_refuses_becomes_device_error(delegate_libs):
    for probe in (True, False):
        with pytest.raises(DeviceError, match="no Edge TPU on this bus"):
            load_external_delegate(
                str(delegate_libs["fake"]), {"fail": "no Edge TPU on this bus"}, probe=probe
            )


def test_library_without_the_plugin_symbols(tmp_path):
    libm = ctypes.util.find_library("m")
    assert libm, "libm not found"
    for probe in (True, False):
        with pytest.raises(DeviceError, match="failed to load delegate"):
            load_external_delegate(libm, probe=probe)
    with pytest.raises(DeviceError, match="failed to load delegate"):
        load_external_delegate(str(tmp_path / "nothing.so"), probe=False)


def test_crashing_delegate_is_caught_by_the_probe(delegate_libs):
    with pytest.raises(DeviceError, match="SIGSEGV"):
        load_external_delegate(str(delegate_libs["crash"]), {"device": "usb"}, name="libedgetpu.so.1")


# -- choosing where a model runs ---------------------------------------------------------------------


def test_no_tpu_runs_on_xnnpack_and_says_why(fake_tree, cli, images):
    result = cli(
        "classify",
        str(images / IMAGE),
        "--model",
        "v1-0.25-128",
        "--format",
        "jsonl",
        "-q",
        env=fake_tree.env,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert (record["delegate"], record["delegate_reason"]) == ("xnnpack", "no Edge TPU found")
    assert record["top_k"][0]["label"] == "Egyptian cat"
    assert "Traceback" not in result.stderr


def test_no_tpu_with_delegate_edgetpu_exits_4(fake_tree, cli, images):
    result = cli(
        "classify", str(images / IMAGE), "--model", "v1-0.25-128", "--delegate", "edgetpu", env=fake_tree.env
    )
    one_line_error(result, 4, "no Edge TPU found", "--delegate edgetpu")


def test_edgetpu_file_by_path_without_tpu_exits_4(fake_tree, cli, images, model_file):
    path = model_file("mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    result = cli("classify", str(images / IMAGE), "--model", str(path), env=fake_tree.env)
    one_line_error(result, 4, "no Edge TPU found", path.name)
    forced = cli(
        "classify", str(images / IMAGE), "--model", str(path), "--delegate", "xnnpack", env=fake_tree.env
    )
    one_line_error(forced, 4, "Edge TPU")


def test_tpu_without_libedgetpu_exits_4(fake_tree, cli, images):
    if edgetpu.find_library():
        pytest.skip(f"this machine has a real libedgetpu ({edgetpu.find_library()}); the test needs none")
    three_tpus(fake_tree)
    result = cli("classify", str(images / IMAGE), "--model", "v1-0.25-128", env=fake_tree.env)
    one_line_error(result, 4, "libedgetpu")


def test_tpu_with_a_model_without_twin_runs_on_cpu(fake_tree, mirror):
    three_tpus(fake_tree)
    opened = open_model("v1-0.75-224", threads=1)
    assert (opened.placement.kind, opened.placement.reason) == ("xnnpack", "v1-0.75-224 has no Edge TPU twin")
    assert any("no Edge TPU model" in w for w in opened.warnings)


def test_usage_errors(fake_tree, mirror, model_file, tmp_path):
    with pytest.raises(UsageError, match="--device"):
        open_model("v1-0.25-128", delegate="cpu", device="usb")
    with pytest.raises(UsageError, match="bad --device"):
        open_model("v1-0.25-128", device="usb-0")
    with pytest.raises(ModelError, match="no Edge TPU twin"):
        open_model("v1-0.75-224", delegate="edgetpu")
    alone = tmp_path / "alone.tflite"  # no alone_edgetpu.tflite beside it
    alone.write_bytes(model_file("mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    with pytest.raises(ModelError, match="not compiled for the Edge TPU"):
        open_model(str(alone), delegate="edgetpu")


def test_fake_libedgetpu_goes_through_the_tpu_path(fake_tree, tmp_path, cli, images, delegate_libs):
    """EDGENET_LIBEDGETPU -> the fake delegate: loaded with the device option, then the _edgetpu model cannot
    be prepared (the fake claims no nodes, so edgetpu-custom-op stays unresolved): exit 4, one line."""
    three_tpus(fake_tree)
    log = tmp_path / "options.log"
    env = dict(fake_tree.env, EDGENET_LIBEDGETPU=str(delegate_libs["fake"]), FAKE_DELEGATE_LOG=str(log))
    result = cli("classify", str(images / IMAGE), "--model", "v1-0.25-128", "--device", "usb:1", env=env)
    one_line_error(result, 4, "failed to prepare", "edgetpu-custom-op", "_edgetpu.tflite")
    assert log.read_text().splitlines() == ["device=usb:1", "created"]


def test_delegate_lib_on_a_cpu_model(fake_tree, tmp_path, cli, images, delegate_libs):
    log = tmp_path / "options.log"
    env = dict(fake_tree.env, FAKE_DELEGATE_LOG=str(log))
    result = cli(
        "classify",
        str(images / IMAGE),
        "--model",
        "v1-0.25-128",
        "--delegate-lib",
        str(delegate_libs["fake"]),
        "--format",
        "jsonl",
        "-q",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record["delegate"] == "external" and "delegate_reason" not in record
    assert record["top_k"][0]["label"] == "Egyptian cat"
    assert log.read_text().splitlines() == ["created", "created"]


@pytest.mark.parametrize("how", ["libedgetpu", "delegate-lib"])
def test_crashing_library_exits_4_with_one_line(fake_tree, cli, images, delegate_libs, how):
    three_tpus(fake_tree)
    env = dict(fake_tree.env)
    args = ["classify", str(images / IMAGE), "--model", "v1-0.25-128"]
    if how == "libedgetpu":
        env["EDGENET_LIBEDGETPU"] = str(delegate_libs["crash"])
    else:
        args += ["--delegate", "edgetpu", "--delegate-lib", str(delegate_libs["crash"])]
    result = cli(*args, env=env)
    one_line_error(result, 4, "crashed", "SIGSEGV", "crash_delegate.so")


@pytest.fixture
def model_pair(tmp_path, model_file):
    """A model given by path with its Edge TPU twin beside it (as `edgenet learn` writes them)."""
    import shutil

    cpu = tmp_path / "garage.tflite"
    shutil.copy(model_file("mobilenet_v1_0.25_128_quant.tflite"), cpu)
    shutil.copy(model_file("mobilenet_v1_0.25_128_quant_edgetpu.tflite"), tmp_path / "garage_edgetpu.tflite")
    return cpu


def test_a_path_with_its_edgetpu_twin_beside_it_runs_the_twin_on_a_tpu(
    fake_tree, cli, images, model_pair, delegate_libs
):
    """With a TPU, --delegate auto takes garage_edgetpu.tflite for garage.tflite (the fake libedgetpu then
    cannot prepare it: the one-line error names the twin)."""
    three_tpus(fake_tree)
    env = dict(fake_tree.env, EDGENET_LIBEDGETPU=str(delegate_libs["fake"]))
    on_tpu = cli("classify", str(images / IMAGE), "--model", str(model_pair), env=env)
    one_line_error(on_tpu, 4, "garage_edgetpu.tflite", "edgetpu-custom-op")


def test_a_path_with_a_twin_but_no_tpu_runs_on_the_cpu_saying_why(fake_tree, cli, images, model_pair):
    run = cli(
        "classify", str(images / IMAGE), "--model", str(model_pair), "-f", "jsonl", "-q", env=fake_tree.env
    )
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert (record["delegate"], record["delegate_reason"]) == ("xnnpack", "no Edge TPU found")


def test_an_edgetpu_file_without_a_tpu_points_at_its_cpu_version(fake_tree, cli, images, model_pair):
    twin = model_pair.with_name("garage_edgetpu.tflite")
    run = cli("classify", str(images / IMAGE), "--model", str(twin), env=fake_tree.env)
    one_line_error(run, 4, "no Edge TPU found", f"--model {model_pair}")
