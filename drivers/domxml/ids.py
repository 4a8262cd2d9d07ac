"""UUIDs and MAC addresses: generating them and writing them the one canonical way."""

from __future__ import annotations

import re
import secrets
import uuid

_UUID_RE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}",
    re.ASCII | re.IGNORECASE,
)
_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}", re.ASCII | re.IGNORECASE)

# QEMU's own OUI, the prefix libvirt gives generated addresses too.
MAC_PREFIX = "52:54:00"


def new_uuid() -> str:
    """A fresh random UUID in canonical form."""
    return str(uuid.uuid4())


def new_mac() -> str:
    """A random MAC address under QEMU's prefix, as libvirt generates them."""
    tail = ":".join(f"{byte:02x}" for byte in secrets.token_bytes(3))
    return f"{MAC_PREFIX}:{tail}"


def canonical_uuid(text: str) -> str | None:
    """``text`` (with or without dashes) as lowercase 8-4-4-4-12, or None if it is no UUID."""
    if not _UUID_RE.fullmatch(text):
        return None
    return str(uuid.UUID(hex=text.replace("-", "")))


def canonical_mac(text: str) -> str | None:
    """``text`` as a lowercase colon-separated MAC address, or None if it is none."""
    if not _MAC_RE.fullmatch(text):
        return None
    return text.lower()


def is_multicast_mac(mac: str) -> bool:
    """True for group addresses, which a NIC cannot own."""
    return bool(int(mac[:2], 16) & 1)
