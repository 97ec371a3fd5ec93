import hashlib
import http.server
import io
import os
import shutil
import tarfile
import threading

import pytest

from edgenet import zoo
from edgenet.errors import ModelError, UsageError

REQUIRED = [
    "v1-0.25-128",
    "v1-0.5-160",
    "v1-0.75-192",
    "v1-0.75-224",
    "v1",
    "v1-0.25-224-float",
    "v2",
    "v2-qat",
    "v2-keras",
    "v2-inat-bird",
    "v3-small",
    "v3-edgetpu",
    "mobilenet-edgetpu",
    "mobilenet-edgetpu-0.75",
]


def test_catalog_has_the_family():
    names = set(zoo.catalog())
    assert set(REQUIRED) <= names
    assert zoo.default_model() == "v2"
    assert zoo.get_spec("v2").artifact.file == "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    assert zoo.get_spec("v2-qat").edgetpu.file == "mobilenet_v2_1.0_224_quant_edgetpu.tflite"
    assert zoo.get_spec("v3-edgetpu").artifact.git_sha1 == "b3c5a2e5077018e6dc7e28dd696cda32ab0d62f2"


def test_every_checksum_in_the_catalog_matches_the_mirror(mirror):
    """The catalog and the mirror's MANIFEST agree on every file the mirror holds."""
    index = {p.name: p for p in mirror.rglob("*.tflite")}
    checked = 0
    for spec in zoo.catalog().values():
        for artifact in filter(None, (spec.artifact, spec.edgetpu)):
            if artifact.file in index:
                assert zoo.check_integrity(index[artifact.file], artifact) is None, artifact.file
                checked += 1
    assert checked >= 20


def test_unknown_name_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown model 'v9'"):
        zoo.get_spec("v9")


def test_pull_from_mirror_folder_into_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    spec = zoo.get_spec("v1-0.25-128")
    assert not zoo.is_present(spec.artifact)
    path = zoo.pull(spec.artifact)
    assert path == tmp_path / "home" / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.artifact.sha256
    assert zoo.is_present(spec.artifact) and zoo.verify(spec.artifact) is None
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".pull-")]


def test_checksum_mismatch_exits_3_and_leaves_the_cache_alone(tmp_path, monkeypatch, model_file):
    bad_mirror = tmp_path / "mirror"
    bad_mirror.mkdir()
    good = model_file("mobilenet_v1_0.5_160_quant.tflite").read_bytes()
    (bad_mirror / "mobilenet_v1_0.5_160_quant.tflite").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(bad_mirror))
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    artifact = zoo.get_spec("v1-0.5-160").artifact
    with pytest.raises(ModelError, match="checksum mismatch") as caught:
        zoo.pull(artifact)
    assert caught.value.exit_code == 3
    assert not zoo.cache_path(artifact).exists()
    assert list((tmp_path / "home" / "models").iterdir()) == []


def test_cached_file_corrupted_later_is_reported_by_verify(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    artifact = zoo.get_spec("v1-0.25-128").artifact
    path = zoo.pull(artifact)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "sha256" in zoo.verify(artifact)


def test_archive_member_is_extracted_and_verified(tmp_path, monkeypatch, model_file):
    """v3-small also comes as Google's .tgz: the mirror may hold only the archive."""
    archive_mirror = tmp_path / "mirror"
    archive_mirror.mkdir()
    with tarfile.open(archive_mirror / "v3-small_224_1.0_uint8.tgz", "w:gz") as tar:
        tar.add(
            model_file("v3-small_224_1.0_uint8.tflite"),
            arcname="v3-small_224_1.0_uint8/v3-small_224_1.0_uint8.tflite",
        )
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(archive_mirror))
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    path = zoo.pull(zoo.get_spec("v3-small").artifact)
    assert path.read_bytes() == model_file("v3-small_224_1.0_uint8.tflite").read_bytes()


def test_git_blob_sha1_integrity(tmp_path):
    payload = b"hello edgenet\n"
    blob = hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()
    path = tmp_path / "x.tflite"
    path.write_bytes(payload)
    assert zoo.check_integrity(path, zoo.Artifact(file="x.tflite", url=None, git_sha1=blob)) is None
    problem = zoo.check_integrity(path, zoo.Artifact(file="x.tflite", url=None, git_sha1="0" * 40))
    assert "git blob sha1" in problem


def test_mirror_as_base_url_over_loopback_http(tmp_path, monkeypatch, model_file):
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(model_file("mobilenet_v1_0.25_128_quant.tflite"), served)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("EDGENET_MODEL_MIRROR", f"http://127.0.0.1:{server.server_port}/")
        monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
        path = zoo.pull(zoo.get_spec("v1-0.25-128").artifact)
        assert zoo.check_integrity(path, zoo.get_spec("v1-0.25-128").artifact) is None
    finally:
        server.shutdown()


def test_no_network_and_no_mirror_says_how_to_get_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(tmp_path / "empty-mirror"))
    (tmp_path / "empty-mirror").mkdir()
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    artifact = zoo.Artifact(file="nothing.tflite", url="http://127.0.0.1:9/nothing.tflite", sha256="0" * 64)
    with pytest.raises(ModelError) as caught:
        zoo.pull(artifact)
    message = str(caught.value)
    assert (
        "EDGENET_MODEL_MIRROR" in message and str(tmp_path / "home" / "models" / "nothing.tflite") in message
    )
    assert "\n" not in message


def test_built_models_have_no_upstream_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", "")
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError, match="edgenet models build v4-conv-small") as caught:
        zoo.pull(zoo.get_spec("v4-conv-small").artifact)
    assert "make build-venv" in str(caught.value) and "copy it to" not in str(caught.value)


def test_resolve_path_and_name(model_file):
    resolved = zoo.resolve(str(model_file("mobilenet_v1_0.25_128_quant.tflite")))
    assert resolved.spec is None and resolved.name == "mobilenet_v1_0.25_128_quant.tflite"
    by_name = zoo.resolve("v1-0.25-128")
    assert by_name.spec.name == "v1-0.25-128" and by_name.path.exists()


def test_an_archive_without_the_member_is_refused_in_one_line(tmp_path, monkeypatch):
    archive_mirror = tmp_path / "mirror"
    archive_mirror.mkdir()
    with tarfile.open(archive_mirror / "v3-small_224_1.0_uint8.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("other.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(archive_mirror))
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError, match="has no member v3-small_224_1.0_uint8.tflite") as caught:
        zoo.pull(zoo.get_spec("v3-small").artifact)
    assert "\n" not in str(caught.value)


def _rot(path, offset: int) -> None:
    """Flip a byte in place and put the size and mtime back, as a failing SD card would."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x10]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_bit_rot_with_size_and_mtime_kept_is_never_used(tmp_path, monkeypatch, model_file):
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    artifact = zoo.get_spec("v1-0.25-128").artifact
    good = model_file(artifact.file).read_bytes()
    path = zoo.pull(artifact)
    assert zoo.pull(artifact) == path  # verified once already: the old size+mtime stamp would now be trusted
    _rot(path, 300_000)
    assert zoo.pull(artifact).read_bytes() == good  # found and fetched again from the mirror
    _rot(path, 300_000)
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="is damaged") as caught:
        zoo.resolve("v1-0.25-128")
    assert "\n" not in str(caught.value) and "was not used" in str(caught.value)
    assert "sha256" in zoo.verify(artifact)  # `models verify` says it too


def test_a_crc32_record_checks_every_byte_on_later_loads(tmp_path, monkeypatch, mirror):
    """After the full digest held once, a load compares the file's CRC-32 with the record beside it; a
    record that does not match (damaged, or from other bytes) sends it back to the digest, which decides."""
    from edgenet import integrity

    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    artifact = zoo.get_spec("v1-0.25-128").artifact
    path = zoo.pull(artifact)
    record = integrity.record_path(path)
    digest, size, crc = record.read_text().split()
    assert (digest, int(size)) == (artifact.sha256, path.stat().st_size)
    assert int(crc, 16) == integrity.crc32_of(path)
    record.write_text(f"{digest} {size} {int(crc, 16) ^ 1:08x}\n")  # a damaged record, a good file
    assert zoo.verify(artifact) is None and zoo.pull(artifact) == path
    assert record.read_text().split()[2] == crc  # rewritten by the digest
    record.write_text("not a record")
    assert zoo.pull(artifact) == path and record.read_text().split() == [digest, size, crc]
    assert not list(mirror.rglob("*.crc32"))  # nothing is ever written into the mirror


def test_a_cron_run_on_a_cached_model_does_not_load_openssl(tmp_path, images):
    """The CRC-32 record spares a run hashlib (OpenSSL's libcrypto: 3.7 MiB of resident memory); the run
    that pulls the model verifies the full digest and loads it."""
    import subprocess
    import sys

    probe = (
        "import sys; from edgenet.cli import main; code = main(sys.argv[1:]); "
        "print('openssl' if '_hashlib' in sys.modules else 'no openssl', file=sys.stderr); sys.exit(code)"
    )
    photo = str(images / "cat.bmp")
    command = [sys.executable, "-c", probe, "classify", photo, "-m", "v1-0.25-128", "-f", "jsonl"]
    env = {**os.environ, "EDGENET_HOME": str(tmp_path / "home")}
    said = []
    for _ in range(2):
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        said.append(run.stderr.strip().splitlines()[-1])
    assert said == ["openssl", "no openssl"]


def test_bit_rot_in_the_cache_stops_a_cron_run_with_exit_3(tmp_path, images, cli):
    home = tmp_path / "home"
    first = cli(
        "classify",
        str(images / "cat.bmp"),
        "-m",
        "v1-0.25-128",
        "-f",
        "jsonl",
        env={"EDGENET_HOME": str(home)},
    )
    assert first.returncode == 0
    _rot(home / "models" / "mobilenet_v1_0.25_128_quant.tflite", 200_000)
    again = cli(
        "classify",
        str(images / "cat.bmp"),
        "-m",
        "v1-0.25-128",
        "-f",
        "jsonl",
        env={"EDGENET_HOME": str(home), "EDGENET_MODEL_MIRROR": str(tmp_path / "nowhere")},
    )
    assert again.returncode == 3 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "is damaged" in again.stderr


def test_a_cached_file_changed_later_is_verified_again_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENET_HOME", str(tmp_path / "home"))
    artifact = zoo.get_spec("v1-0.25-128").artifact
    path = zoo.pull(artifact)
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(data))
    again = zoo.pull(artifact)  # the mirror has the good file: fetched again
    assert zoo.check_integrity(again, artifact) is None
    path.write_bytes(bytes(data))
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="cached mobilenet_v1_0.25_128_quant.tflite is damaged") as caught:
        zoo.pull(artifact)
    assert "mirror folder" in str(caught.value) and "does not exist" in str(caught.value)


def test_a_model_file_named_anything_is_a_path(tmp_path, model_file):
    odd = tmp_path / "my model ü.TFLITE"
    odd.write_bytes(model_file("mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    assert zoo.resolve(str(odd)).spec is None
    plain = tmp_path / "model.bin"
    plain.write_bytes(odd.read_bytes())
    assert zoo.resolve(str(plain)).path == plain


# -- local builds (edgenet models build): the registry vouches for a file no catalog checksum knows ----------


def _register_local_build(
    home, model_file, name="v4-conv-small", source="mobilenet_v1_0.25_128_quant.tflite"
):
    """Put real model bytes in the cache place of `name` and register them as its local build, as `models
    build` does after the script (tests/test_models_build.py runs the script itself)."""
    from edgenet import local_builds

    spec = zoo.get_spec(name)
    target = home / "models" / spec.artifact.file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(model_file(source).read_bytes())
    build = local_builds.LocalBuild(
        name=name,
        file=spec.artifact.file,
        sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
        size=target.stat().st_size,
        input=128,
        classes=1001,
        weights="random",
        weights_source="random (seed 0)",
        latency_only=True,
        built="2026-11-30T10:00:00Z",
        script="scripts/build_models.py",
        arguments=("v4-conv-small", "--size", "128"),
        tensorflow="2.21.0",
        python=".venv-build/bin/python",
    )
    local_builds.register(target.parent, build)
    return target, build


def test_a_registered_local_build_is_used_without_a_mirror(tmp_path, monkeypatch, model_file):
    home = tmp_path / "home"
    monkeypatch.setenv("EDGENET_HOME", str(home))
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", "")
    target, build = _register_local_build(home, model_file)
    artifact = zoo.get_spec("v4-conv-small").artifact
    assert zoo.check_integrity(target, artifact) is not None  # the catalog's checksum does not know it
    assert zoo.is_present(artifact) and zoo.verify(artifact) is None
    resolved = zoo.resolve("v4-conv-small")
    assert resolved.path == target
    assert (resolved.spec.input, resolved.spec.classes, resolved.spec.latency_only) == (128, 1001, True)
    assert resolved.spec.built == build and resolved.spec.to_dict()["local_build"]["tensorflow"] == "2.21.0"
    pulled = zoo.obtain(artifact)
    assert (pulled.origin, pulled.build) == ("local build", build)
    # the registry is on disk: a new process reads the same entry
    assert zoo.local_build(artifact) == build
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(
        [".local-builds.lock", "local-builds.json", artifact.file]
    )


def test_a_changed_local_build_is_refused_in_one_line(tmp_path, monkeypatch, model_file):
    home = tmp_path / "home"
    monkeypatch.setenv("EDGENET_HOME", str(home))
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", "")
    target, _ = _register_local_build(home, model_file)
    _rot(target, 100_000)
    with pytest.raises(ModelError, match="is damaged") as caught:
        zoo.resolve("v4-conv-small")
    message = str(caught.value)
    assert "\n" not in message and "its local build has" in message
    assert "edgenet models build v4-conv-small" in message
    assert "its local build has" in zoo.verify(zoo.get_spec("v4-conv-small").artifact)


def test_the_published_file_replaces_a_local_build_and_its_entry(tmp_path, monkeypatch, model_file):
    home = tmp_path / "home"
    monkeypatch.setenv("EDGENET_HOME", str(home))
    target, _ = _register_local_build(home, model_file)
    artifact = zoo.get_spec("v4-conv-small").artifact
    assert zoo.pull(artifact) == target and zoo.local_build(artifact) is not None  # the build is kept
    pulled = zoo.obtain(artifact, force=True)  # the mirror's copy, checked against the catalog
    assert pulled.origin == "mirror" and pulled.build is None
    assert zoo.check_integrity(target, artifact) is None
    assert zoo.local_build(artifact) is None and zoo.resolve("v4-conv-small").spec.built is None


def test_an_unreadable_registry_vouches_for_nothing(tmp_path, monkeypatch, model_file):
    from edgenet import local_builds

    home = tmp_path / "home"
    monkeypatch.setenv("EDGENET_HOME", str(home))
    monkeypatch.setenv("EDGENET_MODEL_MIRROR", "")
    target, build = _register_local_build(home, model_file)
    registry = home / "models" / "local-builds.json"
    registry.write_text('{"builds": {"' + build.file + '": {"sha256": 12}}')
    with pytest.raises(ModelError, match="edgenet models build v4-conv-small"):
        zoo.resolve("v4-conv-small")
    registry.write_bytes(b"\xff\x00 not json")
    assert zoo.verify(zoo.get_spec("v4-conv-small").artifact) is not None
    local_builds.register(home / "models", build)  # a new build writes a good registry over the bad one
    assert zoo.resolve("v4-conv-small").path == target


def test_registry_updates_from_two_threads_keep_both_entries(tmp_path, model_file):
    from dataclasses import replace

    from edgenet import local_builds

    folder = tmp_path / "models"
    folder.mkdir()
    _, build = _register_local_build(tmp_path, model_file)

    def register_many(prefix: str) -> None:
        for i in range(15):
            local_builds.register(folder, replace(build, file=f"{prefix}{i}.tflite", name=prefix))

    threads = [threading.Thread(target=register_many, args=(p,)) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = set(local_builds.read_registry(folder))
    assert files == {build.file} | {f"{p}{i}.tflite" for p in "ab" for i in range(15)}
    assert not [p for p in folder.iterdir() if p.name.startswith(".local-builds-")]  # no scratch left
