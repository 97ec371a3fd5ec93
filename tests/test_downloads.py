"""Model downloads under stress: a slow or silent URL mirror and a stop signal, a FIFO in the mirror, garbage
and oversized archives, a server that never stops sending, a download killed mid-way."""

import http.server
import os
import resource
import signal
import subprocess
import sys
import tarfile
import threading

import pytest
from conftest import ROOT

from edgenet import zoo
from edgenet.errors import ModelError

V1 = "mobilenet_v1_0.25_128_quant.tflite"

PULL_SCRIPT = """
import signal, sys
from edgenet import zoo
from edgenet.errors import EdgenetError

received = []
for sig in (signal.SIGINT, signal.SIGTERM):  # as the command line does: note the request, stop between steps
    signal.signal(sig, lambda signum, frame: received.append(signum))
try:
    zoo.pull(zoo.get_spec("v1-0.25-128").artifact, should_stop=lambda: bool(received))
except EdgenetError as error:
    print(f"edgenet: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)
"""


class SlowServer:
    """A loopback HTTP server that sends the model a few bytes at a time (`slow`), or accepts the request
    and never answers (`silent`), or sends bytes without end and without a Content-Length (`endless`)."""

    def __init__(self, mode: str, payload: bytes = b""):
        self.requested = threading.Event()
        self.stop = threading.Event()
        self.sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requested.set()
                try:
                    if mode == "silent":
                        server.stop.wait(120)
                        return
                    self.send_response(200)
                    if mode == "slow":
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    step, delay = (64, 0.2) if mode == "slow" else (1 << 16, 0)
                    while not server.stop.is_set() and server.sent < 64 << 20:
                        self.wfile.write(payload[server.sent : server.sent + step] or b"\0" * step)
                        self.wfile.flush()
                        server.sent += step
                        server.stop.wait(delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def start_pull(home, mirror_url):
    env = dict(os.environ, EDGENET_HOME=str(home), EDGENET_MODEL_MIRROR=mirror_url)
    return subprocess.Popen(
        [sys.executable, "-c", PULL_SCRIPT],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("mode", ["slow", "silent"])
def test_a_stop_signal_ends_a_slow_download_with_130_and_leaves_nothing(tmp_path, model_file, mode, signum):
    server = SlowServer(mode, model_file(V1).read_bytes())
    try:
        process = start_pull(tmp_path / "home", server.url)
        assert server.requested.wait(30), process.communicate(timeout=30)
        if mode == "slow":
            while server.sent < 256 and process.poll() is None:
                server.stop.wait(0.05)
        os.kill(process.pid, signum)
        _, stderr = process.communicate(timeout=30)  # the download alone would take hours
    finally:
        server.close()
    assert process.returncode == 130, stderr
    assert stderr.count("\n") == 1 and "interrupted" in stderr and "Traceback" not in stderr
    models = tmp_path / "home" / "models"
    assert sorted(p.name for p in models.iterdir()) == []  # no .pull-* folder, no partial model


def test_a_download_killed_outright_leaves_a_folder_the_next_pull_removes(tmp_path, model_file, monkeypatch):
    server = SlowServer("slow", model_file(V1).read_bytes())
    try:
        process = start_pull(tmp_path / "home", server.url)
        assert server.requested.wait(30)
        process.kill()  # SIGKILL: no handler runs
        process.communicate(timeout=30)
    finally:
        server.close()
    models = tmp_path / "home" / "models"
    assert [p.name for p in models.iterdir() if p.name.startswith(f".pull-{process.pid}-")]
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    path = zoo.pull(zoo.get_spec("v1-0.25-128").artifact)  # from the mirror folder this time
    record = f".{V1}.crc32"  # edgenet.integrity: the CRC-32 later loads check
    assert sorted(p.name for p in models.iterdir()) == [record, V1]
    assert path.read_bytes() == model_file(V1).read_bytes()


def test_a_fifo_in_the_mirror_is_skipped_never_opened(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fifo = mirror / V1
    os.mkfifo(fifo)
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(mirror))
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    outcome = []

    def pull():
        try:
            zoo.pull(zoo.get_spec("v1-0.25-128").artifact)
        except ModelError as error:
            outcome.append(str(error))

    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # blocked in open(): release it before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("pull opened the FIFO and waited for a writer")
    assert outcome and "a FIFO, not a file: skipped" in outcome[0] and "\n" not in outcome[0]


def _archive_mirror(tmp_path, content: bytes):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "v3-small_224_1.0_uint8.tgz").write_bytes(content)
    return mirror


def _real_tgz(model_file, tmp_path) -> bytes:
    path = tmp_path / "real.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(model_file("v3-small_224_1.0_uint8.tflite"), arcname="v3/v3-small_224_1.0_uint8.tflite")
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "corrupt-middle"])
def test_a_bad_archive_is_one_line_and_exit_3(tmp_path, model_file, cli, damage):
    real = _real_tgz(model_file, tmp_path)
    content = {
        "garbage": os.urandom(5000),
        "empty": b"",
        "truncated": real[: len(real) // 2],
        "corrupt-middle": real[:5000] + bytes(b ^ 0x5A for b in real[5000:9000]) + real[9000:],
    }[damage]
    mirror = _archive_mirror(tmp_path, content)
    run = cli(
        "models",
        "pull",
        "v3-small",
        env={"EDGENET_MODEL_MIRROR": str(mirror), "EDGENET_HOME": str(tmp_path / "home")},
    )
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and "v3-small_224_1.0_uint8.tgz" in run.stderr
    assert sorted(p.name for p in (tmp_path / "home" / "models").iterdir()) == []


def test_a_huge_tar_member_is_refused_before_a_byte_is_written(tmp_path, cli):
    """A 3 GB member (sparse here: it takes no disk) in the mirror's archive, under a 64 MB file size limit:
    copying the archive or the member into the cache would fail with EFBIG (File too large)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "v3-small_224_1.0_uint8.tgz"  # a plain tar: tarfile opens any compression
    info = tarfile.TarInfo("v3-small_224_1.0_uint8/v3-small_224_1.0_uint8.tflite")
    info.size = 3_000_000_000
    with open(archive, "wb") as handle:
        handle.write(info.tobuf(format=tarfile.GNU_FORMAT))
        handle.truncate(512 + (info.size + 511) // 512 * 512 + 1024)
    assert archive.stat().st_size > 3_000_000_000

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))

    env = dict(os.environ, EDGENET_MODEL_MIRROR=str(mirror), EDGENET_HOME=str(tmp_path / "home"))
    run = subprocess.run(
        [sys.executable, "-m", "edgenet", "models", "pull", "v3-small"],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
    )
    assert run.returncode == 3, run.stderr
    assert "is 3000000000 bytes, more than the 2621808 expected" in run.stderr
    assert run.stderr.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "home" / "models").iterdir()) == []


def test_a_url_mirror_that_never_stops_sending_is_cut_off_at_the_catalog_size(tmp_path, monkeypatch):
    server = SlowServer("endless")
    try:
        monkeypatch.setenv("EDGENET_MODEL_MIRROR", server.url)
        monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
        with pytest.raises(ModelError, match="more than the 525598 bytes expected") as caught:
            zoo.pull(zoo.get_spec("v1-0.25-128").artifact)
    finally:
        server.close()
    assert "\n" not in str(caught.value)
    assert server.sent < 64 << 20  # it stopped reading long before the server gave up
    assert sorted(p.name for p in (tmp_path / "home" / "models").iterdir()) == []
