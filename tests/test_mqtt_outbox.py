"""MQTT that loses nothing and stops nothing, against a real Mosquitto: a broker never up, killed and
restarted mid-run, a full outbox, a corrupt outbox, two runs sharing one outbox, IPv6, TLS, bad options."""

import json
import os
import sqlite3
import subprocess
import sys

import cv2
import pytest
from broker import Broker, Subscriber, free_port
from conftest import ROOT

from edgenet.errors import UsageError
from edgenet.mqtt import MqttPublisher, check_options, check_topic, parse_host, tls_context


def record(frame: int, index: int = 286, source: str = "photo") -> dict:
    return {
        "source": f"{source}-{frame}.jpg",
        "frame": frame,
        "model": "v2",
        "delegate": "xnnpack",
        "top_k": [{"index": index, "label": "Egyptian cat", "score": 0.8}],
        "latency_ms": {"decode": 1.0, "preprocess": 0.2, "inference": 3.0, "postprocess": 0.01, "total": 4.2},
        "time": "2026-11-25T14:30:00.123Z",
    }


def frames_received(subscriber, topic: str) -> list[int]:
    return [json.loads(p)["frame"] for p in subscriber.payloads(topic)]


# -- options ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("broker.local", ("broker.local", 1883)),
        ("127.0.0.1:1884", ("127.0.0.1", 1884)),
        ("[::1]:1883", ("::1", 1883)),
        ("[::1]", ("::1", 1883)),
        ("::1", ("::1", 1883)),
        ("fe80::1:2:3", ("fe80::1:2:3", 1883)),
    ],
)
def test_broker_addresses_parse(given, expected):
    assert parse_host(given) == expected


@pytest.mark.parametrize(
    "given",
    ["", "  ", "mqtt://broker:1883", "[::1", "[nothost]:1883", "[::1]x", "host:0", "host:70000", ":1883"],
)
def test_bad_broker_addresses_are_usage_errors(given):
    with pytest.raises(UsageError) as caught:
        parse_host(given)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        ("edgenet/+/cam", "wildcards"),
        ("edgenet/#", "wildcards"),
        ("edgenet//cam", "empty level"),
        ("/edgenet", "empty level"),
        ("", "empty"),
        ("$SYS/edgenet", "broker"),
    ],
)
def test_topics_that_cannot_be_published_to_are_usage_errors(topic, says):
    with pytest.raises(UsageError, match=says) as caught:
        check_topic(topic)
    assert "\n" not in str(caught.value)


def test_a_plain_topic_keeps_its_levels():
    assert check_topic("edgenet/kitchen/") == "edgenet/kitchen"
    assert check_topic("edgenet/küche") == "edgenet/küche"


def test_a_missing_or_garbage_ca_is_a_usage_error(tmp_path):
    garbage = tmp_path / "ca.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    for ca, says in (
        (tmp_path / "missing.pem", "no such file"),
        (garbage, "not a usable"),
        (empty, "not a usable"),
    ):
        with pytest.raises(UsageError, match=says) as caught:
            check_options("127.0.0.1", ca_file=str(ca))
        assert "\n" not in str(caught.value)
    with pytest.raises(UsageError):
        MqttPublisher("127.0.0.1:1", ca_file=str(garbage), outbox=tmp_path)  # the constructor checks too
    assert tls_context(False, None) is None and tls_context(True, None) is not None


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--mqtt-ca", "/nonexistent/ca.pem"], "--mqtt-ca"),
        (["--mqtt-topic", "edgenet/+"], "wildcards"),
        (["--mqtt-topic", "a//b"], "empty level"),
        (["--ha-discovery", "ha/#"], "--ha-discovery 'ha/#': + and # are wildcards"),
    ],
)
def test_bad_mqtt_options_exit_2_in_one_line_with_no_record(images, cli, options, says):
    run = cli(
        "classify", str(images / "cat.bmp"), "-f", "jsonl", "--mqtt", f"127.0.0.1:{free_port()}", *options
    )
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and says in run.stderr


# -- a broker that is not there -----------------------------------------------------------------------------


def test_a_broker_never_up_costs_nothing_and_the_next_run_delivers(tmp_path):
    port = free_port()
    outbox = tmp_path / "outbox"
    first = MqttPublisher(f"127.0.0.1:{port}", topic="edgenet/late", outbox=outbox)
    for frame in range(50):
        first.publish(record(frame))
    first.close()
    assert first.pending == 50 and first.sent == 0 and first.dropped == 0
    assert any("cannot reach the MQTT broker" in w for w in first.warnings)
    assert "50 waiting in" in first.summary()

    broker = Broker(tmp_path, port=port)
    try:
        subscriber = Subscriber(broker, "edgenet/late/results")
        second = MqttPublisher(broker.address, topic="edgenet/late", outbox=outbox)
        second.publish(record(50))
        second.close()
        assert subscriber.wait_for(lambda m: len(m) >= 51)
        assert sorted(set(frames_received(subscriber, "edgenet/late/results"))) == list(range(51))
        assert second.pending == 0 and second.sent == 51 and second.warnings == []
        subscriber.close()
    finally:
        broker.stop()


def test_a_full_outbox_drops_the_oldest_and_counts_them(tmp_path):
    port = free_port()
    publisher = MqttPublisher(f"127.0.0.1:{port}", topic="edgenet/full", outbox=tmp_path, max_messages=10)
    for frame in range(25):
        publisher.publish(record(frame))
    publisher.close()
    assert publisher.dropped == 15 and publisher.pending == 10
    assert any("outbox is full" in w for w in publisher.warnings)
    broker = Broker(tmp_path, port=port)
    try:
        subscriber = Subscriber(broker, "edgenet/full/results")
        later = MqttPublisher(broker.address, topic="edgenet/full", outbox=tmp_path)
        later.close()
        assert subscriber.wait_for(lambda m: len(m) >= 10)
        assert sorted(frames_received(subscriber, "edgenet/full/results")) == list(range(15, 25))
        subscriber.close()
    finally:
        broker.stop()


def test_a_record_that_is_not_json_is_counted_not_raised(tmp_path):
    publisher = MqttPublisher(f"127.0.0.1:{free_port()}", outbox=tmp_path)
    publisher.publish({"source": "x", "frame": 0, "error": {1, 2}})  # a set: json cannot write it
    publisher.close()
    assert publisher.dropped == 1 and any("could not be published" in w for w in publisher.warnings)


def test_a_corrupt_outbox_is_moved_aside_and_replaced(tmp_path):
    port = free_port()
    path = tmp_path / f"mqtt-127.0.0.1_{port}.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    publisher = MqttPublisher(f"127.0.0.1:{port}", outbox=tmp_path)
    publisher.publish(record(0))
    publisher.close()
    assert publisher.pending == 1 and any("moved to" in w for w in publisher.warnings)
    assert [p.name for p in tmp_path.iterdir() if ".broken-" in p.name]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (1,)


def test_an_outbox_folder_that_cannot_be_made_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    publisher = MqttPublisher(f"127.0.0.1:{free_port()}", outbox=blocker / "outbox")
    publisher.publish(record(0))
    publisher.close()
    assert publisher.outbox_path is None and any("in memory" in w for w in publisher.warnings)


def test_an_outbox_locked_by_another_process_delays_nothing_and_loses_nothing(broker_factory, tmp_path):
    broker = broker_factory()
    subscriber = Subscriber(broker, "edgenet/locked/results")
    publisher = MqttPublisher(broker.address, topic="edgenet/locked", outbox=tmp_path)
    other = sqlite3.connect(publisher.outbox_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another run in the middle of a long write
    for frame in range(10):
        publisher.publish(record(frame))  # the run's writer gives up at once; the messages wait in memory
    assert publisher.pending == 10
    other.execute("COMMIT")
    other.close()
    publisher.close()
    assert subscriber.wait_for(lambda m: len(m) >= 10)
    assert sorted(frames_received(subscriber, "edgenet/locked/results")) == list(range(10))
    assert publisher.pending == 0 and publisher.dropped == 0
    subscriber.close()


# -- a broker that dies and comes back ----------------------------------------------------------------------


def test_a_broker_killed_and_restarted_mid_run_gets_every_message(tmp_path):
    broker = Broker(tmp_path, persistent=True)
    subscriber = Subscriber(broker, "edgenet/restart/results", persistent=True)
    publisher = MqttPublisher(broker.address, topic="edgenet/restart", outbox=tmp_path / "outbox")
    try:
        for frame in range(20):
            publisher.publish(record(frame))
        assert subscriber.wait_for(lambda m: len(m) >= 20)
        assert broker.wait_saved()  # the subscriber's session survives the kill
        broker.kill()
        for frame in range(20, 50):
            publisher.publish(record(frame))  # nothing raises, nothing blocks
        assert publisher.pending >= 30
        broker.start()
        for frame in range(50, 60):
            publisher.publish(record(frame))
        assert subscriber.wait_for(
            lambda m: set(frames_received(subscriber, "edgenet/restart/results")) >= set(range(60)), 60
        )
        publisher.close()
        assert publisher.pending == 0 and publisher.dropped == 0
        assert any("lost the connection" in w for w in publisher.warnings)
    finally:
        subscriber.close()
        broker.stop()


def test_two_runs_sharing_an_outbox_do_not_send_each_others_messages(broker_factory, tmp_path):
    broker = broker_factory()
    subscriber = Subscriber(broker, "edgenet/+/results")
    first = MqttPublisher(broker.address, topic="edgenet/a", outbox=tmp_path)
    second = MqttPublisher(broker.address, topic="edgenet/b", outbox=tmp_path)
    for frame in range(40):
        first.publish(record(frame, source="a"))
        second.publish(record(frame, source="b"))
    first.close()
    second.close()
    assert subscriber.wait_for(lambda m: len(m) >= 80)
    sources = [json.loads(p)["source"] for _, p, _ in subscriber.messages]
    assert len(sources) == 80 and len(set(sources)) == 80
    subscriber.close()


@pytest.fixture
def broker_factory(tmp_path):
    started = []

    def start(**options):
        started.append(Broker(tmp_path, **options))
        return started[-1]

    yield start
    for broker in started:
        broker.stop()


# -- policies -----------------------------------------------------------------------------------------------


def test_on_change_for_detections_is_the_set_of_labels(broker_factory, tmp_path):
    broker = broker_factory()
    subscriber = Subscriber(broker, "edgenet/det/results")
    publisher = MqttPublisher(broker.address, topic="edgenet/det", on_change=True, outbox=tmp_path)

    def detections(frame, *labels):
        return {"source": "cam", "frame": frame, "detections": [{"label": label} for label in labels]}

    seen = [("cat",), ("cat",), ("cat", "dog"), ("dog", "cat"), (), ()]
    for frame, labels in enumerate(seen):
        publisher.publish(detections(frame, *labels))
    publisher.close()
    assert subscriber.wait_for(lambda m: len(m) >= 3)
    assert frames_received(subscriber, "edgenet/det/results") == [0, 2, 4]
    subscriber.close()


def test_on_change_with_a_key_given_by_the_caller(broker_factory, tmp_path):
    broker = broker_factory()
    subscriber = Subscriber(broker, "edgenet/key/results")
    publisher = MqttPublisher(
        broker.address,
        topic="edgenet/key",
        on_change=True,
        change_key=lambda r: r["top_k"][0]["score"] > 0.5,
        outbox=tmp_path,
    )
    for frame, score in enumerate((0.9, 0.8, 0.2, 0.1, 0.7)):
        rec = record(frame)
        rec["top_k"][0]["score"] = score
        publisher.publish(rec)
    publisher.close()
    assert subscriber.wait_for(lambda m: len(m) >= 3)
    assert frames_received(subscriber, "edgenet/key/results") == [0, 2, 4]
    subscriber.close()


# -- IPv6 and TLS -------------------------------------------------------------------------------------------


def test_an_ipv6_broker(broker_factory, tmp_path):
    broker = broker_factory(host="::1")
    subscriber = Subscriber(broker, "edgenet/v6/#")
    assert broker.address.startswith("[::1]:")
    publisher = MqttPublisher(broker.address, topic="edgenet/v6", outbox=tmp_path)
    publisher.publish(record(0))
    publisher.close()
    assert subscriber.wait_for(lambda m: frames_received(subscriber, "edgenet/v6/results") == [0])
    assert publisher.sent == 1 and publisher.pending == 0
    subscriber.close()


def _certificates(folder):
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edgenet test CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr")  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.cnf", "-out", "server.pem")  # fmt: skip
    return folder / "ca.pem"


def test_tls_with_the_ca_given(broker_factory, tmp_path):
    ca = _certificates(tmp_path)
    broker = broker_factory(tls=(ca, tmp_path / "server.pem", tmp_path / "server.key"))
    publisher = MqttPublisher(broker.address, topic="edgenet/tls", ca_file=str(ca), outbox=tmp_path / "o")
    publisher.publish(record(0))
    publisher.close()
    assert publisher.sent == 1 and publisher.pending == 0, publisher.warnings


# -- the real command line ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("mqtt-photos")
    sources = [cv2.imread(str(p)) for p in sorted(images.glob("*.bmp"))]
    for i in range(300):
        image = sources[i % len(sources)]
        cv2.imwrite(str(folder / f"img_{i:04d}.jpg"), cv2.resize(image, (320, 240)))
    return folder


def test_a_run_with_the_broker_never_up_writes_every_record_and_a_later_run_sends_them(photos, tmp_path, cli):
    port = free_port()
    env = {"EDGENET_HOME": str(tmp_path / "home")}
    args = [
        "-m",
        "v1-0.25-128",
        "-f",
        "jsonl",
        "-q",
        "--mqtt",
        f"127.0.0.1:{port}",
        "--mqtt-topic",
        "edgenet/cron",
    ]
    run = cli("classify", str(photos), *args, env=env)
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert len(run.stdout.splitlines()) == 300
    broker = Broker(tmp_path, port=port)
    try:
        subscriber = Subscriber(broker, "edgenet/cron/results")
        later = cli("classify", str(photos / "img_0000.jpg"), *args, env=env)
        assert later.returncode == 0
        assert subscriber.wait_for(lambda m: len(m) >= 301, 30)
        sources = {json.loads(p)["source"] for p in subscriber.payloads("edgenet/cron/results")}
        assert sources == {str(p) for p in photos.iterdir()}
        subscriber.close()
    finally:
        broker.stop()


@pytest.mark.parametrize("back", ["during the run", "after the run"])
def test_a_broker_killed_during_a_run_loses_nothing(photos, tmp_path, back):
    """Killed after 30 records; back after 120 (this run sends what waited) or only once the run is over
    (the run ends normally, and the next run sends what waited)."""
    broker = Broker(tmp_path, persistent=True)
    subscriber = Subscriber(broker, "edgenet/soak/results", persistent=True)
    assert broker.wait_saved()  # the subscriber's session survives the kill
    env = dict(os.environ, EDGENET_HOME=str(tmp_path / "home"))
    args = [
        "-m",
        "v2",
        "-t",
        "1",
        "-f",
        "jsonl",
        "-q",
        "--mqtt",
        broker.address,
        "--mqtt-topic",
        "edgenet/soak",
    ]
    # the records go to a pipe the test reads: the run cannot get far ahead of the test (the pipe, the writer
    # queue), so the broker is killed, and brought back, while the run is really in the middle
    process = subprocess.Popen(
        [sys.executable, "-m", "edgenet", "classify", str(photos), *args],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    read: list[str] = []

    def read_until(count: int) -> None:
        while len(read) < count:
            line = process.stdout.readline()
            if not line:
                return
            read.append(line)

    def sources() -> set[str]:
        return {json.loads(p)["source"] for p in subscriber.payloads("edgenet/soak/results")}

    try:
        read_until(30)
        broker.kill()
        killed_mid_run = process.poll() is None
        if back == "during the run":
            read_until(120)
            assert process.poll() is None, "the run ended before the broker came back"
            broker.start()
        rest, stderr = process.stdout.read(), process.stderr.read()  # the reader read_until used: no gap
        process.wait(300)
        read += rest.splitlines(keepends=True)
        assert process.returncode == 0 and "Traceback" not in stderr, stderr
        assert killed_mid_run and len(read) == 300
        if back == "after the run":
            broker.start()
            later = subprocess.run(
                [sys.executable, "-m", "edgenet", "classify", str(photos / "img_0000.jpg"), *args],
                env=env,
                cwd=str(ROOT),
                capture_output=True,
                timeout=120,
            )
            assert later.returncode == 0
        assert subscriber.wait_for(lambda m: len(sources()) >= 300, 60)
        assert sources() == {str(p) for p in photos.iterdir()}
    finally:
        subscriber.close()
        broker.stop()


def test_a_run_killed_with_the_broker_down_is_sent_by_the_next_run_at_once(photos, tmp_path):
    """kill -9 while the broker is down: what the killed run wrote locally is in the outbox, and the next
    run (started at once: the killed run's heartbeat is still fresh, its process is gone) sends it."""
    port = free_port()
    output = tmp_path / "out.jsonl"
    env = dict(os.environ, EDGENET_HOME=str(tmp_path / "home"))
    args = [
        "-m",
        "v2",
        "-t",
        "1",
        "-f",
        "jsonl",
        "-q",
        "--mqtt",
        f"127.0.0.1:{port}",
        "--mqtt-topic",
        "edgenet/k9",
    ]
    os.mkfifo(output)  # the test reads the records: the run cannot finish before the kill
    process = subprocess.Popen(
        [sys.executable, "-m", "edgenet", "classify", str(photos), *args, "-o", str(output)],
        env=env,
        cwd=str(ROOT),
        stderr=subprocess.DEVNULL,
    )
    with open(output) as reader:
        lines = [reader.readline() for _ in range(40)]
        process.kill()
        process.wait(30)
        lines += reader.readlines()
    written = [json.loads(line)["source"] for line in lines if line.endswith("}\n")]
    assert 40 <= len(written) < 300
    broker = Broker(tmp_path, port=port)
    try:
        subscriber = Subscriber(broker, "edgenet/k9/results")
        later = subprocess.run(
            [sys.executable, "-m", "edgenet", "classify", str(photos / "img_0299.jpg"), *args],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            timeout=120,
        )
        assert later.returncode == 0
        expected = set(written[:-1]) | {str(photos / "img_0299.jpg")}  # the last one may have died in between

        def received() -> set[str]:
            return {json.loads(p)["source"] for p in subscriber.payloads("edgenet/k9/results")}

        assert subscriber.wait_for(lambda m: received() >= expected, 30), len(expected - received())
        subscriber.close()
    finally:
        broker.stop()
