"""qemu+ssh:// — reaching a host's daemon over one SSH connection per host."""

from __future__ import annotations

from drivers.errors import NotSupported
from drivers.remote.client import RemoteConnection
from drivers.uri import URI


async def open_ssh(uri: URI) -> RemoteConnection:
    raise NotSupported(f"'{uri.without_params()}': SSH connections are not available yet.")
