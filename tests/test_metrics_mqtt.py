import json

import pytest
from broker import Broker, Subscriber
from prometheus_client.parser import text_string_to_metric_families

from edgenet.metrics import PromTextfile
from edgenet.mqtt import MqttPublisher, parse_host

GOOD = {
    "source": "a.jpg",
    "frame": 0,
    "model": "v2",
    "delegate": "xnnpack",
    "top_k": [{"index": 286, "label": "Egyptian cat", "score": 0.8}],
    "latency_ms": {"decode": 1.0, "preprocess": 0.2, "inference": 3.0, "postprocess": 0.01, "total": 4.2},
    "time": "2026-11-25T14:30:00.123Z",
}
BAD = {"source": "b.jpg", "frame": 1, "model": "v2", "error": "cannot decode image: empty", "time": "x"}


def test_prom_textfile_parses_with_prometheus_clients_parser(tmp_path):
    path = tmp_path / "edgenet.prom"
    metrics = PromTextfile(str(path), model="v2", delegate="xnnpack", every_s=0)
    for record in (GOOD, GOOD, BAD):
        metrics.observe(record)
    metrics.write()
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    frames = next(s for s in families["edgenet_frames"].samples if s.name == "edgenet_frames_total")
    assert frames.value == 3 and frames.labels == {"model": "v2", "delegate": "xnnpack"}
    errors = next(s for s in families["edgenet_errors"].samples if s.name == "edgenet_errors_total")
    assert errors.value == 1
    count = next(
        s for s in families["edgenet_inference_latency_seconds"].samples if s.name.endswith("_count")
    )
    assert count.value == 2
    total = next(s for s in families["edgenet_inference_latency_seconds"].samples if s.name.endswith("_sum"))
    assert total.value == pytest.approx(0.006)
    assert families["edgenet_last_success_timestamp_seconds"].samples[0].value > 1.7e9
    assert not [p for p in tmp_path.iterdir() if p.name != "edgenet.prom"]  # no temp file left behind


def test_a_failed_textfile_write_is_a_warning_and_the_next_write_retries(tmp_path):
    folder = tmp_path / "textfile-collector"
    folder.mkdir()
    path = folder / "edgenet.prom"
    metrics = PromTextfile(str(path), model="v2", delegate="xnnpack", every_s=1e-9)  # writes on every record
    metrics.observe(GOOD)
    assert path.exists()
    path.unlink()
    folder.rmdir()  # node_exporter's folder removed (or the disk full) in the middle of a run
    for record in (GOOD, BAD, GOOD):
        metrics.observe(record)  # never raises
    assert metrics.failed_writes == 3 and metrics.write() is False
    assert len(metrics.warnings) == 1 and "cannot write the Prometheus textfile" in metrics.warnings[0]
    assert "the run goes on" in metrics.warnings[0]
    folder.mkdir()
    metrics.observe(GOOD)  # the next periodic write succeeds and has counted everything
    samples = {s.name: s for f in text_string_to_metric_families(path.read_text()) for s in f.samples}
    assert samples["edgenet_frames_total"].value == 5 and samples["edgenet_errors_total"].value == 1
    assert sorted(p.name for p in folder.iterdir()) == ["edgenet.prom"]


def test_a_textfile_that_cannot_be_written_does_not_stop_classification(images, tmp_path, cli):
    """A name the folder accepts but whose temporary twin (NAME.PID.THREAD) is too long: every write fails."""
    prom = tmp_path / ("m" * 236 + ".prom")
    run = cli("classify", str(images), "-m", "v1-0.25-128", "-f", "jsonl", "--prom-textfile", str(prom))
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 0 and len(records) == 12 and "Traceback" not in run.stderr
    assert not prom.exists()


@pytest.mark.parametrize(
    ("given", "kind"),
    [
        ("xnnpack", "xnnpack"),
        ("cpu (xnnpack failed to prepare this model)", "cpu"),
        ("xnnpack (no Edge TPU found)", "xnnpack"),
        ("edgetpu", "edgetpu"),
        ("EdgeTPU", "edgetpu"),
        ("my-npu", "external"),
        ("", "external"),
    ],
)
def test_the_delegate_label_is_a_kind(tmp_path, given, kind):
    path = tmp_path / "edgenet.prom"
    metrics = PromTextfile(str(path), model="v2", delegate=given, every_s=0)
    metrics.observe(GOOD)
    assert metrics.write() is True
    labels = {
        s.labels["delegate"] for f in text_string_to_metric_families(path.read_text()) for s in f.samples
    }
    assert labels == {kind}


def test_parse_host():
    assert parse_host("broker.local") == ("broker.local", 1883)
    assert parse_host("127.0.0.1:1884") == ("127.0.0.1", 1884)


@pytest.fixture
def broker(tmp_path):
    running = Broker(tmp_path)
    yield running
    running.stop()


def test_messages_availability_and_stats_reach_a_real_broker(broker):
    from edgenet.run.summary import RunSummary

    subscriber = Subscriber(broker, "edgenet/test/#")
    publisher = MqttPublisher(broker.address, topic="edgenet/test")
    publisher.run = RunSummary()  # the run's figures: the stats message reports them, counted once
    for record in (GOOD, BAD):
        publisher.run.add(record)
        publisher.publish(record)
    publisher.close()
    assert subscriber.wait_for(lambda m: sum(t == "edgenet/test/results" for t, _, _ in m) == 2)
    assert subscriber.wait_for(lambda m: any(t == "edgenet/test/stats" for t, _, _ in m))
    results = [json.loads(p) for t, p, _ in subscriber.messages if t == "edgenet/test/results"]
    assert results[0]["top_k"][0]["label"] == "Egyptian cat" and results[1]["error"].startswith(
        "cannot decode"
    )
    status = [p.decode() for t, p, _ in subscriber.messages if t == "edgenet/test/status"]
    assert status[0] == "online" and status[-1] == "offline"
    stats = json.loads(next(p for t, p, _ in subscriber.messages if t == "edgenet/test/stats"))
    assert stats["frames"] == 2 and stats["errors"] == 1
    subscriber.close()


def test_on_change_sends_only_when_top1_changes(broker):
    subscriber = Subscriber(broker, "edgenet/chg/results")
    publisher = MqttPublisher(broker.address, topic="edgenet/chg", on_change=True)
    dog = json.loads(json.dumps(GOOD))
    dog["top_k"][0]["index"] = 207
    for record in (GOOD, GOOD, GOOD, dog, dog, GOOD):
        publisher.publish(record)
    publisher.close()
    assert subscriber.wait_for(lambda m: len(m) >= 3)
    assert [json.loads(p)["top_k"][0]["index"] for _, p, _ in subscriber.messages] == [286, 207, 286]
    subscriber.close()
