"""libvirt-compatible domain XML as a typed view over a preserved lxml tree.

``parse_domain(xml)`` validates a document against the subset virtdeck supports, fills
in libvirt's defaults and returns a :class:`DomainDef`. Every problem with a document is
reported as :class:`~drivers.errors.InvalidXML` with a message that names the element
and says what to write instead.
"""

from __future__ import annotations

from drivers.domxml.devices import (
    CharDevDef,
    DiskDef,
    GraphicsDef,
    InputDef,
    InterfaceDef,
    MemballoonDef,
    PanicDef,
    VideoDef,
    WatchdogDef,
)
from drivers.domxml.domain import DomainDef, LifecycleAction, new_uuid, parse_domain
from drivers.domxml.tree import MAX_XML_BYTES

__all__ = [
    "MAX_XML_BYTES",
    "CharDevDef",
    "DiskDef",
    "DomainDef",
    "GraphicsDef",
    "InputDef",
    "InterfaceDef",
    "LifecycleAction",
    "MemballoonDef",
    "PanicDef",
    "VideoDef",
    "WatchdogDef",
    "new_uuid",
    "parse_domain",
]
