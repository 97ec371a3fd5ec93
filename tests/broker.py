"""A real Mosquitto broker on a free loopback port, for the tests that publish; it can be killed and started
again on the same port, with its sessions kept on disk (`persistent`) so a subscriber misses nothing."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Broker:
    def __init__(
        self,
        folder: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        persistent: bool = False,
        tls: tuple[Path, Path, Path] | None = None,
    ):
        """`tls`: (CA, certificate, key) files: the listener speaks TLS only."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError(
                "mosquitto is not installed: `make test` installs it (apt-get install mosquitto)"
            )
        self.binary, self.host, self.folder = binary, host, folder
        self.port = port or free_port(host)
        self.config = folder / f"mosquitto-{self.port}.conf"
        # as root, mosquitto would switch to the `mosquitto` user, who cannot read or write the test's folder
        lines = [f"listener {self.port} {host}", "allow_anonymous true", f"user {getpass.getuser()}"]
        if tls:
            lines += [f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}"]
        if persistent:
            store = folder / f"mosquitto-{self.port}"
            store.mkdir(exist_ok=True)
            self.store = store / "mosquitto.db"
            lines += ["persistence true", f"persistence_location {store}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        self.config.write_text("\n".join(lines) + "\n")
        self.process = None
        self.start()

    def start(self) -> None:
        """Start (again) on the same port."""
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return  # (a TLS listener accepts the TCP connection too)
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        problem = self.process.stderr.read().decode(errors="replace").strip()[-300:]
        raise RuntimeError(f"mosquitto did not start on port {self.port}: {problem}")

    def wait_saved(self, timeout: float = 20.0) -> bool:
        """Wait for the persistent broker's next save to disk (it saves every second or two): what it knew
        when this was called (sessions, subscriptions) survives a SIGKILL from then on."""
        since = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.store.stat().st_mtime > since + 0.05:
                    return True
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        return False

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, nothing saved that was not saved already."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)


class Subscriber:
    """Collects every message on a topic filter (paho, in its own thread). `persistent`: a session the broker
    keeps while the subscriber is away (and across a restart of a persistent broker)."""

    def __init__(self, broker: Broker, topic: str, *, persistent: bool = False):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{free_port()}",
            clean_session=not persistent,
        )
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.retain))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: setattr(self, "subscribed", self.subscribed + 1)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self.wait_for(lambda _: self.subscribed > 0):
            raise RuntimeError("the test subscriber could not subscribe")

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.messages):
                return True
            time.sleep(0.05)
        return False

    def payloads(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in list(self.messages) if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
