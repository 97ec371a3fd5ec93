"""Home Assistant MQTT discovery for watched regions: one `sensor` per region, so that it appears in Home
Assistant without any YAML. Pure functions: topics and payloads; edgenet.sinks.reporters publishes them.

Per region, under the run's base topic (edgenet/<hostname> by default):
- `<base>/regions/<region>/state`: the confirmed state (`open`, `car`, `none`), retained;
- `<base>/regions/<region>/attributes`: {"from", "score", "time", "source", "frame"} of the last change;
- `<prefix>/sensor/<node>/<region>/config`: the discovery config (prefix `homeassistant` by default), with
  `unique_id`, `state_topic`, `availability` (the run's retained `<base>/status`: online/offline, and the
  broker's last will) and `device`.
"""

from __future__ import annotations

import json
import re

DEFAULT_PREFIX = "homeassistant"


def node_id(base_topic: str) -> str:
    """A Home Assistant node id from the base topic: edgenet/garage-pi -> edgenet_garage-pi."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", base_topic).strip("_") or "edgenet"


def state_topic(base_topic: str, region: str) -> str:
    return f"{base_topic}/regions/{region}/state"


def attributes_topic(base_topic: str, region: str) -> str:
    return f"{base_topic}/regions/{region}/attributes"


def discovery(base_topic: str, region: str, model: str, version: str, prefix: str = DEFAULT_PREFIX) -> tuple:
    """(topic, payload) of the discovery config for one region's sensor."""
    node = node_id(base_topic)
    config = {
        "name": region,
        "unique_id": f"{node}_{region}",
        "object_id": f"{node}_{region}",
        "state_topic": state_topic(base_topic, region),
        "json_attributes_topic": attributes_topic(base_topic, region),
        "availability": [
            {
                "topic": f"{base_topic}/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "icon": "mdi:cctv",
        "device": {
            "identifiers": [node],
            "name": f"edgenet {base_topic.rsplit('/', 1)[-1]}",
            "manufacturer": "edgenet",
            "model": model,
            "sw_version": version,
        },
    }
    return f"{prefix}/sensor/{node}/{region}/config", json.dumps(config)


def attributes(event: dict) -> str:
    """The attributes message of a state event (edgenet.run.records.state_event)."""
    keep = ("from", "score", "time", "source", "frame")
    return json.dumps({key: event.get(key) for key in keep})
