"""The optional libvirt-python binding, imported only when a ``libvirt:`` URI is opened.

``import drivers`` never loads it: hosts without libvirt (most virtdeck installs) pay
nothing, and a missing binding is a clear error at the moment someone asks for it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from drivers.errors import NotSupported

INSTALL_HINT = (
    "libvirt hosts need the libvirt-python binding, which is not installed; install it with "
    "'pip install virtdeck[libvirt]' (it builds against libvirt's C library: on Debian or "
    "Ubuntu first 'apt-get install libvirt-dev pkg-config gcc')."
)


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise NotSupported(INSTALL_HINT) from err


def libvirt() -> ModuleType:
    """The ``libvirt`` module, or NotSupported saying how to install it."""
    return _load("libvirt")


def libvirtaio() -> ModuleType:
    """The ``libvirtaio`` module (shipped with libvirt-python)."""
    return _load("libvirtaio")
