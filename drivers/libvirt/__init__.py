"""The libvirt driver: hosts that libvirtd manages, reached through libvirt-python.

``libvirt:<libvirt URI>`` (see :mod:`drivers.libvirt.driver`). libvirt-python is an optional
extra (``pip install virtdeck[libvirt]``): nothing here imports it until a ``libvirt:`` URI
is opened, and then its absence is a NotSupported saying what to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.errors import NotSupported

if TYPE_CHECKING:
    from drivers.api import Connection
    from drivers.uri import URI


async def open_libvirt(uri: URI) -> Connection:
    """Open ``uri`` (a ``libvirt:`` URI) with libvirt."""
    from drivers.libvirt.binding import libvirt

    libvirt()  # before anything else: without the binding, say how to install it
    from drivers.libvirt.driver import open_libvirt as open_it

    return await open_it(uri)


def mixed_pair(source_uri: str, dest_uri: str) -> NotSupported:
    """The error for a migration between a libvirt host and a virtdeckd host."""
    return NotSupported(
        f"Cannot migrate between {source_uri} and {dest_uri}: one is a libvirt host and the "
        "other a virtdeckd host, and each migrates only to its own kind (libvirt runs the "
        "migration between two libvirt daemons, virtdeckd between two virtdeckd daemons). "
        "Choose a destination of the same kind, or define the domain on the other host and "
        "start it there."
    )
