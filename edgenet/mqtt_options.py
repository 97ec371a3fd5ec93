"""MQTT options a user can get wrong, checked before any work (UsageError, exit 2, one line): the broker
address (IPv4, names, IPv6 in brackets or bare), the base topic, the TLS CA file. Light: no paho import."""

from __future__ import annotations

import ipaddress
import os
import socket

from edgenet.errors import UsageError, one_line

_ADDRESS_HINT = "give HOST[:PORT], e.g. broker.local, 192.168.1.10:1883, [::1]:1883 or ::1"


def parse_host(text: str, default_port: int = 1883) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address -> (host, port)."""
    if not text or not text.strip():
        raise UsageError(f"--mqtt is empty; {_ADDRESS_HINT}")
    text = text.strip()
    if "://" in text or "/" in text:
        raise UsageError(f"--mqtt {text!r}: no scheme or path; {_ADDRESS_HINT}")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise UsageError(f"--mqtt {text!r}: {_ADDRESS_HINT}")
        port = rest[1:]
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise UsageError(f"--mqtt {text!r}: {host!r} in brackets is not an IPv6 address") from None
    elif text.count(":") > 1:
        host, port = text, ""  # a bare IPv6 address: no port (write [addr]:port for one)
    else:
        host, _, port = text.partition(":")
    if not host:
        raise UsageError(f"--mqtt {text!r}: no host; {_ADDRESS_HINT}")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--mqtt {text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def check_topic(topic: str, option: str = "--mqtt-topic", example: str = "edgenet/kitchen") -> str:
    """A base topic to publish under: levels without wildcards, not empty, not the broker's `$` topics."""
    plain = topic[:-1] if topic.endswith("/") else topic
    if not plain:
        raise UsageError(f"{option} is empty; give a base topic like {example}")
    if "+" in plain or "#" in plain:
        raise UsageError(
            f"{option} {topic!r}: + and # are wildcards for subscribing, not for publishing; give a "
            f"plain topic like {example}"
        )
    if "" in plain.split("/"):
        raise UsageError(f"{option} {topic!r} has an empty level (a leading / or //); write {example}")
    if plain.startswith("$"):
        raise UsageError(f"{option} {topic!r}: topics starting with $ belong to the broker")
    if "\0" in plain or len(plain.encode("utf-8", "surrogatepass")) > 60_000:
        raise UsageError("--mqtt-topic: no NUL characters, and under 60000 bytes")
    return plain


def tls_context(tls: bool, ca_file: str | None):
    """None without TLS; otherwise an ssl context with the system CAs, or only `ca_file`'s."""
    if not tls and not ca_file:
        return None
    import ssl

    if ca_file is not None and not os.path.isfile(ca_file):
        raise UsageError(
            f"--mqtt-ca {ca_file}: no such file; give the CA certificate (PEM) that signed the broker's"
        )
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(
            f"--mqtt-ca {ca_file}: not a usable PEM CA certificate ({one_line(exc, 120)})"
        ) from None


def check_options(
    address: str, *, topic: str | None = None, tls: bool = False, ca_file: str | None = None, discovery=""
):
    """Every MQTT option a user can get wrong, checked before any work: UsageError (exit 2) with one line.
    `discovery`: the Home Assistant discovery prefix ("" when off)."""
    parse_host(address)
    if topic is not None:
        check_topic(topic)
    if discovery:
        check_topic(discovery, "--ha-discovery", "homeassistant")
    tls_context(tls, ca_file)


def default_topic() -> str:
    return f"edgenet/{socket.gethostname()}"
