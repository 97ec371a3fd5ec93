"""MQTT publishing with paho-mqtt: one message per record (or every Nth / on a change of top-1 for
streams), a retained availability topic with a last will, and a periodic stats message.

Topics under the base topic (default edgenet/<hostname>): `results`, `status` (retained "online"/"offline",
the broker publishes "offline" itself if the process dies), `stats`.
"""

from __future__ import annotations

import json
import socket
import time

from edgenet.errors import DeviceError, UsageError


def parse_host(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""
    try:
        return host, int(port) if port else 1883
    except ValueError:
        raise UsageError(f"--mqtt takes HOST[:PORT], not {text!r}") from None


def default_topic() -> str:
    return f"edgenet/{socket.gethostname()}"


class MqttPublisher:
    def __init__(
        self,
        address: str,
        *,
        topic: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        every: int = 1,
        on_change: bool = False,
        stats_every_s: float = 30.0,
        connect_timeout_s: float = 10.0,
    ):
        import paho.mqtt.client as mqtt

        self.host, self.port = parse_host(address)
        self.topic = (topic or default_topic()).rstrip("/")
        self.every = max(1, every)
        self.on_change = on_change
        self.stats_every_s = stats_every_s
        self._count = 0
        self._errors = 0
        self._last_top1: int | None = None
        self._last_stats = time.monotonic()
        self._started = time.monotonic()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"edgenet-{socket.gethostname()}-{id(self) & 0xFFFF:x}",
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls or ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.will_set(f"{self.topic}/status", "offline", qos=1, retain=True)
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise DeviceError(
                f"cannot connect to the MQTT broker {self.host}:{self.port}: {exc}; "
                "check --mqtt and that the broker runs"
            ) from None
        self.client.loop_start()
        deadline = time.monotonic() + connect_timeout_s
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.client.is_connected():
            self.client.loop_stop()
            raise DeviceError(
                f"the MQTT broker {self.host}:{self.port} did not accept the connection (credentials? TLS?)"
            )
        self.client.publish(f"{self.topic}/status", "online", qos=1, retain=True).wait_for_publish(5)

    def publish(self, record: dict) -> None:
        self._count += 1
        if "error" in record:
            self._errors += 1
            self.client.publish(f"{self.topic}/results", json.dumps(record), qos=1)
        else:
            top1 = record["top_k"][0]["index"] if record.get("top_k") else None
            changed = top1 != self._last_top1
            self._last_top1 = top1
            if (self.on_change and changed) or (not self.on_change and (self._count - 1) % self.every == 0):
                self.client.publish(f"{self.topic}/results", json.dumps(record), qos=1)
        if time.monotonic() - self._last_stats >= self.stats_every_s:
            self.publish_stats()

    def publish_stats(self) -> None:
        elapsed = time.monotonic() - self._started
        stats = {
            "frames": self._count,
            "errors": self._errors,
            "fps": round(self._count / elapsed, 2) if elapsed > 0 else None,
            "time": time.time(),
        }
        self.client.publish(f"{self.topic}/stats", json.dumps(stats), qos=1)
        self._last_stats = time.monotonic()

    def close(self) -> None:
        self.publish_stats()
        self.client.publish(f"{self.topic}/status", "offline", qos=1, retain=True).wait_for_publish(5)
        self.client.loop_stop()
        self.client.disconnect()
