"""MQTT publishing with paho-mqtt: one message per record (or every Nth, or on a change of what is seen),
a retained availability topic with a last will, and a periodic stats message.

Topics under the base topic (default edgenet/<hostname>): `results`, `status` (retained "online"/"offline",
the broker publishes "offline" itself if the process dies), `stats`.

Local records come first; MQTT is a best-effort copy that is never lost quietly and never stops the run:
- `publish` only queues (in memory, then in the on-disk outbox, edgenet.outbox): it never blocks and never
  raises. A sender thread hands the outbox to the broker (QoS 1, a bounded window in flight) and deletes a
  message only when the broker acknowledged it: at least once.
- The connection is made in the background and remade after a broker restart (paho's reconnect, 1 to 10 s
  apart): a broker that is down at start or dies mid-run costs nothing but waiting messages.
- `pending`, `dropped`, `sent` and `warnings` let the command say what happened, once, at the end.
"""

from __future__ import annotations

import collections
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from edgenet.errors import one_line
from edgenet.mqtt_options import check_options, check_topic, default_topic, parse_host, tls_context

__all__ = ["MqttPublisher", "check_options", "check_topic", "parse_host", "tls_context", "top1_or_labels"]

WINDOW = 100  # messages handed to paho and not yet acknowledged
QUEUE_MAX = 10_000  # records waiting for the sender thread (it stores them within milliseconds)
CLOSE_TIMEOUT_S = 5.0
RECONNECT_MAX_S = 4  # paho's reconnect backoff ends here: below CLOSE_TIMEOUT_S, so a broker that is back at
# the end of a run is reconnected to, and sent what waited, before the run exits
PROBE_TIMEOUT_S = 0.5


def default_outbox() -> Path:
    from edgenet.zoo import home

    return home() / "outbox"


def top1_or_labels(record: dict) -> Hashable:
    """The default "on change" key: the set of detected labels (detections), else the top-1 index."""
    if "detections" in record:
        return frozenset(d.get("label", d.get("index")) for d in record["detections"] or ())
    top = record.get("top_k")
    return top[0]["index"] if top else None


# -- the publisher ------------------------------------------------------------------------------------------


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
        change_key: Callable[[dict], Hashable] | None = None,
        stats_every_s: float = 30.0,
        outbox: str | os.PathLike | None = None,
        max_messages: int | None = None,
        max_mb: float | None = None,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
    ):
        context = tls_context(tls, ca_file)
        self.host, self.port = parse_host(address, 8883 if context else 1883)
        self.topic = check_topic(topic) if topic is not None else default_topic()
        self.every = max(1, every)
        self.on_change = on_change
        self.change_key = change_key or top1_or_labels
        self.stats_every_s = stats_every_s
        self.close_timeout_s = close_timeout_s
        self._count = self._sent = 0  # records seen (for --mqtt-every), messages sent
        self.run = None  # the run's RunSummary (edgenet.run.summary): frames, errors and fps for stats
        self._dropped_here = self._dropped_by_sender = 0  # one writer each: no lost increments
        self._last_key: object = object()  # differs from any key: the first record is sent
        self._last_stats = time.monotonic()
        self._warnings: list[str] = []
        self._queue: collections.deque = collections.deque()
        self._direct: collections.deque = collections.deque()  # stats: sent when connected, else skipped
        self._retained: dict[str, bytes] = {}  # topic -> latest payload (region states, discovery)
        self._retained_due: set[str] = set()  # ... to send when connected (all of them after a reconnect)
        self._retained_lock = threading.Lock()
        self._acked: collections.deque = collections.deque()  # mids from paho's network thread
        self._inflight: dict[int, int] = {}  # mid -> outbox row id
        self._wake, self._closing, self._stop = threading.Event(), threading.Event(), threading.Event()
        self._down = False  # the last connection attempt failed or the connection was lost
        self._owned_left: int | None = None
        self._outbox = self._open_outbox(outbox, max_messages, max_mb)
        self._pending_stored = self._outbox.count
        self._writer = self._open_writer()
        self._written = [0, 0]  # messages and bytes the run's writer stored (it alone writes this)
        self._written_seen = [0, 0]  # ... of which the sender has counted (it alone writes this)
        self.client = self._connect_in_background(context, username, password)
        self._sender = threading.Thread(target=self._deliver, name="edgenet-mqtt-sender", daemon=True)
        self._sender.start()

    def _open_outbox(self, folder, max_messages: int | None, max_mb: float | None):
        from edgenet import outbox

        slug = re.sub(r"[^A-Za-z0-9.-]", "_", f"{self.host}_{self.port}")
        path = Path(folder if folder is not None else default_outbox()) / f"mqtt-{slug}.sqlite"
        opened = outbox.Outbox(
            path, max_messages=max_messages or outbox.MAX_MESSAGES, max_mb=max_mb or outbox.MAX_MB
        )
        self._warnings.extend(opened.warnings)
        return opened

    def _open_writer(self):
        from edgenet.outbox import OutboxWriter

        if self._outbox.path is None:
            return None
        try:
            return OutboxWriter(self._outbox)
        except Exception as exc:  # sqlite3.Error: the sender thread stores everything instead
            self._warn(f"the MQTT outbox {self._outbox.path}: {one_line(exc)}")
            return None

    def _connect_in_background(self, context, username: str | None, password: str | None):
        import paho.mqtt.client as mqtt

        host = socket.gethostname()[:20]
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgenet-{host}-{os.getpid()}-{os.urandom(2).hex()}"
        )
        if username:
            client.username_pw_set(username, password)
        if context is not None:
            client.tls_set_context(context)
        client.will_set(f"{self.topic}/status", "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = lambda _c, _u, mid, _rc, _p: (self._acked.append(mid), self._wake.set())
        client.reconnect_delay_set(1, RECONNECT_MAX_S)
        client.connect_timeout = 5.0
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()
        return client

    # -- what the command reads -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker: queued, in the outbox (earlier runs' included)."""
        return len(self._queue) + self._pending_stored + self._written[0] - self._written_seen[0]

    @property
    def dropped(self) -> int:
        """Messages given up this run (the outbox was full: the oldest went first)."""
        return self._dropped_here + self._dropped_by_sender

    @property
    def sent(self) -> int:
        """Messages the broker acknowledged this run (earlier runs' included)."""
        return self._sent

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    @property
    def outbox_path(self) -> Path | None:
        return self._outbox.path

    @property
    def warnings(self) -> list[str]:
        """One line per distinct problem (broker unreachable, outbox full...), for the command to print."""
        return list(self._warnings)

    def summary(self) -> str:
        where = f" in {self._outbox.path}" if self._outbox.path else " in memory (lost at exit)"
        host = f"[{self.host}]" if ":" in self.host else self.host
        line = f"mqtt {host}:{self.port}: {self.sent} sent, {self.pending} waiting{where}"
        return line + (f", {self.dropped} dropped (outbox full)" if self.dropped else "")

    # -- the run's side: never blocks, never raises ---------------------------------------------------

    def publish(self, record: dict) -> None:
        try:
            if "event" in record:  # a region's confirmed change: always sent, not a frame
                self._enqueue(f"{self.topic}/results", json.dumps(record).encode())
                return
            self._count += 1
            if "error" in record:
                send = True
            elif self.on_change:
                key = self.change_key(record)
                send, self._last_key = key != self._last_key, key
            else:
                send = (self._count - 1) % self.every == 0
            if send:
                self._enqueue(f"{self.topic}/results", json.dumps(record).encode())
            if time.monotonic() - self._last_stats >= self.stats_every_s:
                self.publish_stats()
        except Exception as exc:  # a record that cannot be a message must not stop the run
            self._dropped_here += 1
            self._warn(f"a record could not be published to MQTT: {one_line(exc)}")

    def _enqueue(self, topic: str, payload: bytes) -> None:
        if self._writer is not None and not self._queue:  # messages already waiting in memory go first
            try:
                self._writer.store(topic, payload)
                self._written = [self._written[0] + 1, self._written[1] + len(topic) + len(payload)]
                self._wake.set()
                return
            except Exception as exc:  # busy (another run writes) or failing: the sender stores it
                if "locked" not in str(exc):
                    self._warn(
                        f"the MQTT outbox {self._outbox.path}: {one_line(exc)}; messages wait in memory"
                    )
        if len(self._queue) >= QUEUE_MAX:  # the sender is stuck (a stalled disk): oldest first
            self._queue.popleft()
            self._dropped_here += 1
        self._queue.append((topic, payload))
        self._wake.set()

    def publish_retained(self, topic: str, payload: str | bytes) -> None:
        """A retained message where only the latest matters (a region's state, a discovery config): kept in
        memory and sent, retained, as soon as the broker is there, again after every reconnect (a broker that
        lost its retained store gets them back). Never blocks, never raises."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        with self._retained_lock:
            self._retained[topic] = data
            self._retained_due.add(topic)
        self._wake.set()

    def _send_retained(self) -> None:
        with self._retained_lock:
            due = [(topic, self._retained[topic]) for topic in sorted(self._retained_due)]
            self._retained_due.clear()
        for topic, payload in due:
            self.client.publish(topic, payload, qos=1, retain=True)

    def publish_stats(self) -> None:
        run = self.run
        stats = {
            "frames": run.count if run is not None else self._count,
            "errors": run.errors if run is not None else None,
            "fps": round(run.steady_fps(), 2) if run is not None else None,
            "pending": self.pending,
            "dropped": self.dropped,
            "time": time.time(),
        }
        self._direct.append((f"{self.topic}/stats", json.dumps(stats).encode()))
        self._last_stats = time.monotonic()
        self._wake.set()

    def close(self, timeout_s: float | None = None) -> None:
        """Send what waits while the broker is there (at most `timeout_s`, default close_timeout_s), say
        "offline", and stop. What is left stays in the outbox for the next run. Never raises."""
        try:
            self.publish_stats()
            self._closing_wait(self.close_timeout_s if timeout_s is None else timeout_s)
            if self.client.is_connected():
                info = self.client.publish(f"{self.topic}/status", "offline", qos=1, retain=True)
                info.wait_for_publish(1.0)
        except Exception as exc:
            self._warn(f"MQTT: {one_line(exc)}")
        finally:
            connected = self.client.is_connected()
            self._stop.set()
            self._wake.set()
            self._sender.join(5.0)
            if self._writer is not None:
                self._writer.close()
            self.client.disconnect()
            stopper = threading.Thread(target=self.client.loop_stop, daemon=True)
            stopper.start()
            # paho's thread, between two connection attempts, sleeps up to 1 s, or up to 5 s in a connect to a
            # silent host: it ends by itself, nothing of ours waits on it
            stopper.join(2.0 if connected else 0.05)

    def _reachable(self) -> bool:
        """Does the broker's port take a connection now (refused: at once; a silent host: PROBE_TIMEOUT_S)?"""
        try:
            socket.create_connection((self.host, self.port), timeout=PROBE_TIMEOUT_S).close()
            return True
        except OSError:
            return False

    def _closing_wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        back = None
        self._owned_left = None
        self._closing.set()
        self._wake.set()
        while time.monotonic() < deadline:
            idle = not self._queue and not self._direct and not self._retained_due and not self._inflight
            if idle and self._owned_left == 0:
                return
            if self._down and not self.client.is_connected():
                if back is None:  # asked once: it is back, and paho's next attempt (within
                    back = self._reachable()  # RECONNECT_MAX_S) sends the rest; or it is away
                if not back:
                    return  # the broker is away: the outbox keeps the rest
            time.sleep(0.02)

    # -- the sender thread ---------------------------------------------------------------------------

    def _deliver(self) -> None:
        next_heartbeat = 0.0
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                self._count_written()
                self._store_queued()
                self._settle_acks()
                if time.monotonic() >= next_heartbeat:
                    self._outbox.heartbeat()  # also claims what earlier runs left
                    next_heartbeat = time.monotonic() + 10.0
                if self.client.is_connected():
                    self._send()
                else:
                    while len(self._direct) > 1:  # stats are news: only the latest is worth sending
                        self._direct.popleft()
                if self._closing.is_set():
                    self._owned_left = self._outbox.owned()
            except Exception as exc:  # the outbox failing (disk full, I/O error): retry, say it once
                self._warn(f"the MQTT outbox {self._outbox.path}: {one_line(exc)}; messages wait in memory")
                self._stop.wait(1.0)
            self._pending_stored = self._outbox.count
            if stopping:
                break
        try:
            self._count_written()
            self._store_queued()
            self._settle_acks()
            self._outbox.close()
            self._pending_stored = self._outbox.count
        except Exception as exc:
            self._warn(f"the MQTT outbox {self._outbox.path}: {one_line(exc)}")

    def _count_written(self) -> None:
        written = list(self._written)
        messages, size = written[0] - self._written_seen[0], written[1] - self._written_seen[1]
        if messages:
            self._written_seen = written
            self._note_dropped(self._outbox.note_added(messages, size))

    def _note_dropped(self, dropped: int) -> None:
        if dropped:
            self._dropped_by_sender += dropped
            self._warn(
                f"the MQTT outbox is full ({self._outbox.max_messages} messages or "
                f"{self._outbox.max_bytes / 1e6:g} MB): the oldest messages were dropped"
            )

    def _store_queued(self) -> None:
        batch = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return
        try:
            dropped = self._outbox.add(batch)
        except Exception:
            self._queue.extendleft(reversed(batch))  # tried again on the next wake
            raise
        self._note_dropped(dropped)

    def _settle_acks(self) -> None:
        done = []
        while self._acked:
            rowid = self._inflight.pop(self._acked.popleft(), None)
            if rowid is not None:
                done.append(rowid)
        if done:
            self._outbox.remove(done)
            self._sent += len(done)

    def _send(self) -> None:
        import paho.mqtt.client as mqtt

        self._send_retained()
        while self._direct:
            topic, payload = self._direct.popleft()
            self.client.publish(topic, payload, qos=1)
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        for rowid, topic, payload in self._outbox.next_batch(room, set(self._inflight.values())):
            try:
                info = self.client.publish(topic, payload, qos=1)
            except ValueError as exc:  # can never be sent (a topic or payload the protocol refuses)
                self._outbox.remove([rowid])
                self._dropped_by_sender += 1
                self._warn(f"an MQTT message was refused and dropped: {one_line(exc)}")
                continue
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                break
            self._inflight[info.mid] = rowid  # paho resends it after a reconnect until it is acknowledged

    # -- paho's network thread ------------------------------------------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._down = True
            self._warn(
                f"the MQTT broker {self.host}:{self.port} refused the connection ({reason_code}); check "
                "--mqtt-user and --mqtt-password; messages wait in the outbox"
            )
            return
        self._down = False
        client.publish(f"{self.topic}/status", "online", qos=1, retain=True)
        with self._retained_lock:
            self._retained_due.update(self._retained)  # a new session: every retained message again
        self._wake.set()

    def _on_connect_fail(self, _client, _userdata) -> None:
        self._down = True
        self._warn(
            f"cannot reach the MQTT broker {self.host}:{self.port}: messages wait in the outbox and are sent "
            "when it is back (by this run or the next)"
        )

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if self._stop.is_set():
            return
        self._down = True
        self._warn(
            f"lost the connection to the MQTT broker {self.host}:{self.port} ({reason_code}): messages wait "
            "in the outbox and are sent when it is back"
        )

    def _warn(self, message: str) -> None:
        if message not in self._warnings:
            self._warnings.append(message)
