"""Watching a spot: --roi regions for classify and detect, debounced states (--confirm), state messages and
Home Assistant discovery on a real Mosquitto, and the camera snapshot loop (--interval)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from broker import Broker, Subscriber

SIZE = (640, 480)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def scene(door: np.ndarray, side: np.ndarray) -> np.ndarray:
    """A 640x480 frame: the 'door' region (left half) shows one photo, the right half another."""
    frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    frame[:, : SIZE[0] // 2] = cv2.resize(door, (SIZE[0] // 2, SIZE[1]), interpolation=cv2.INTER_AREA)
    frame[:, SIZE[0] // 2 :] = cv2.resize(side, (SIZE[0] // 2, SIZE[1]), interpolation=cv2.INTER_AREA)
    return frame


@pytest.fixture(scope="module")
def door_clip(tmp_path_factory, images) -> tuple[Path, list[str]]:
    """The door shows a cat, a macaw, a cat, a macaw (6 frames each), with one stray macaw frame in the first
    stretch (fewer than --confirm 3: no change). The right half shows the same hot dog throughout."""
    cat, macaw, hotdog = (cv2.imread(str(images / n)) for n in ("cat.bmp", "parrot.jpg", "hot_dog.jpg"))
    doors = [cat, cat, macaw, cat, cat, cat] + [macaw] * 6 + [cat] * 6 + [macaw] * 6
    path = tmp_path_factory.mktemp("regions") / "door.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    for door in doors:
        writer.write(scene(door, hotdog))
    writer.release()
    return path, ["Egyptian cat", "macaw", "Egyptian cat", "macaw"]


def test_each_region_has_its_result_and_confirmed_changes_are_records(cli, door_clip):
    clip, contents = door_clip
    args = ("--roi", "door=0,0,0.5,1", "--roi", "side=320,0,320,480", "--confirm", "3", "-k", "1")
    run = cli("classify", "--video", str(clip), "-m", "v2", *args, "-f", "jsonl")
    assert run.returncode == 0, run.stderr
    found = records(run.stdout)
    frames = [r for r in found if "event" not in r]
    assert len(frames) == 24 and all([r["region"] for r in f["regions"]] == ["door", "side"] for f in frames)
    assert frames[0]["regions"][0]["box"] == {"xmin": 0, "ymin": 0, "xmax": 320, "ymax": 480}
    events = [r for r in found if r.get("event") == "state"]
    door = [(e["from"], e["to"]) for e in events if e["region"] == "door"]
    assert door == list(zip([None, *contents[:-1]], contents, strict=True))  # the stray frame changed nothing
    side = [e for e in events if e["region"] == "side"]
    assert [(e["from"], e["to"]) for e in side] == [(None, "hotdog, hot dog, red hot")]
    # an event follows the frame that confirmed it (other events of that frame aside), and names it
    for position, event in enumerate(found):
        if "event" in event:
            before = next(r for r in reversed(found[:position]) if "event" not in r)
            assert (before["frame"], event["source"]) == (event["frame"], str(clip))
    assert "state changes" in run.stderr


def test_state_messages_and_home_assistant_discovery_on_a_real_broker(cli, door_clip, tmp_path):
    """The issue's check: a region that switches content N times gives exactly N state messages (its first
    confirmed state and each switch), retained; the discovery configs carry Home Assistant's fields."""
    clip, contents = door_clip
    broker = Broker(tmp_path)
    states = Subscriber(broker, "edgenet/garage/regions/+/state")
    configs = Subscriber(broker, "homeassistant/#")
    try:
        run = cli(
            "classify", "--video", str(clip), "-m", "v2", "--roi", "door=0,0,0.5,1", "--confirm", "3",
            "-f", "jsonl", "-q", "--mqtt", broker.address, "--mqtt-topic", "edgenet/garage",
            env={"EDGENET_HOME": str(tmp_path / "home")},
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        topic = "edgenet/garage/regions/door/state"
        assert states.wait_for(lambda m: len([x for x in m if x[0] == topic]) >= len(contents))
        assert [p.decode() for p in states.payloads(topic)] == contents
        assert configs.wait_for(lambda m: len(m) >= 1)
        (config_topic, payload, _retained) = configs.messages[0]
        config = json.loads(payload)
        assert config_topic == "homeassistant/sensor/edgenet_garage/door/config"
        assert config["unique_id"] == "edgenet_garage_door" and config["state_topic"] == topic
        assert config["availability"] == [
            {
                "topic": "edgenet/garage/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]
        assert config["device"]["identifiers"] == ["edgenet_garage"] and config["device"]["name"]
        late = Subscriber(broker, topic)  # a Home Assistant that starts later gets the state at once
        assert late.wait_for(lambda m: bool(m)) and late.messages[0][1].decode() == contents[-1]
        assert late.messages[0][2]  # retained
        late.close()
    finally:
        states.close()
        configs.close()
        broker.stop()


def test_detect_regions_keep_the_detections_whose_centre_is_inside(cli, images):
    run = cli(
        "detect", str(images / "grace_hopper.bmp"), "-m", "ssd-v1", "--roi", "top=0,0,1,0.5",
        "--roi", "bottom=0,0.5,1,0.5", "-f", "jsonl", "--confirm", "1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    frame, *events = records(run.stdout)
    regions = {r["region"]: r["labels"] for r in frame["regions"]}
    assert regions == {"top": ["person"], "bottom": ["person", "tie"]}
    for detection in frame["detections"]:
        box = detection["box"]
        centre = (box["ymin"] + box["ymax"]) / 2
        assert detection["regions"] == (["top"] if centre < 300 else ["bottom"])
    assert {(e["region"], e["to"]) for e in events} == {("top", "person"), ("bottom", "person,tie")}


def test_a_region_is_cropped_exactly_as_a_file_of_its_pixels(cli, images, tmp_path):
    """--roi crops the decoded frame: the same result as classifying a lossless file of those pixels (what
    `edgenet learn --roi` trains on)."""
    photo = cv2.imread(str(images / "grace_hopper.bmp"))
    crop = tmp_path / "crop.bmp"
    cv2.imwrite(str(crop), photo[120:420, 100:400])
    whole = cli(
        "classify",
        str(images / "grace_hopper.bmp"),
        "-m",
        "v2",
        "--roi",
        "face=100,120,300,300",
        "-f",
        "jsonl",
    )
    alone = cli("classify", str(crop), "-m", "v2", "-f", "jsonl")
    assert records(whole.stdout)[0]["regions"][0]["top_k"] == records(alone.stdout)[0]["top_k"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--roi", "door"), "NAME=x,y,w,h"),
        (("--roi", "a b=0,0,1,1"), "NAME=x,y,w,h"),
        (("--roi", "door=0,0,2"), "x,y,w,h"),
        (("--roi", "d=0,0,0.5,1", "--roi", "d=0.5,0,0.5,1"), "twice"),
        (("--interval", "1"), "--camera"),
    ],
)
def test_bad_regions_and_intervals_are_one_line_usage_errors(cli, images, args, words):
    run = cli("classify", str(images / "cat.bmp"), "-m", "v1-0.25-128", *args)
    assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr


def test_a_region_outside_the_frame_is_an_error_record(cli, images):
    run = cli(
        "classify", str(images / "cat.bmp"), "-m", "v1-0.25-128", "--roi", "far=5000,10,10,10", "-f", "jsonl"
    )
    assert run.returncode == 1 and "outside" in records(run.stdout)[0]["error"]


def test_interval_takes_snapshots_instead_of_reading_every_frame(cli, tmp_path, images):
    """A snapshot loop: after each frame it sleeps, then drops the frame the driver kept and takes the next,
    so a camera (a video file stands in) is read at every other frame, whatever the timing."""
    clip = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    photo = cv2.resize(cv2.imread(str(images / "cat.bmp")), (320, 240))
    for _ in range(40):
        writer.write(photo)
    writer.release()
    run = cli(
        "classify",
        "--camera",
        str(clip),
        "--interval",
        "0.05",
        "--max-frames",
        "4",
        "-m",
        "v1-0.25-128",
        "-f",
        "jsonl",
    )
    assert run.returncode == 0, run.stderr
    assert [r["frame"] for r in records(run.stdout)] == [0, 2, 4, 6]
