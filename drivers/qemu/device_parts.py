"""The parts of device elements the QEMU driver builds; every other attribute or child of
those elements is refused at define time (:func:`refused_parts`), so that nothing a user
wrote is silently left out of the guest.

The lists are what virtdeck builds plus what libvirt itself writes into ``virsh dumpxml``
without changing the command line (``<alias>``, a NIC's host ``<target dev>``, the serial
``<target><model>``, ``<backingStore/>``). Elements whose parts are checked elsewhere
(``<sound>``, ``<audio>``, ``<rng>``, ``<disk><driver>``) are not repeated here.
"""

from __future__ import annotations

from lxml import etree

from drivers.domxml.tree import show

_COMMON = ("address", "alias")
# element → (attributes, children)
_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "disk": (
        ("type", "device"),
        ("driver", "source", "target", "readonly", "boot", "serial", "backingStore", *_COMMON),
    ),
    "interface": (
        ("type",),
        ("mac", "source", "model", "boot", "target", "link", *_COMMON),
    ),
    "graphics": (
        ("type", "port", "autoport", "listen", "socket", "passwd", "keymap", "sharePolicy"),
        ("listen",),
    ),
    "video": ((), ("model", *_COMMON)),
    "input": (("type", "bus"), _COMMON),
    "watchdog": (("model", "action"), _COMMON),
    "panic": (("model",), _COMMON),
    "memballoon": (("model", "autodeflate", "freePageReporting"), ("stats", *_COMMON)),
    "serial": (("type", "tty"), ("source", "target", "log", *_COMMON)),
    "console": (("type", "tty"), ("source", "target", "log", *_COMMON)),
    "controller": (("type", "index", "model", "ports"), ("model", "target", *_COMMON)),
}
# virtio-serial controllers belong to the channel work (their ports=/vectors=)
_UNCHECKED_CONTROLLERS = ("virtio-serial",)
_PCI_TARGET_ATTRS = ("chassis", "port", "chassisNr")
_VIDEO_MODEL_ATTRS = ("type", "vram", "heads", "primary", "ram", "vgamem", "vram64")
_TARGET_ATTRS = ("dev", "bus", "tray")
_SHARE_POLICIES = ("allow-exclusive", "force-shared", "ignore")
_KEYMAP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz-_")


def _name(node: etree._Element) -> str:
    tag = str(node.tag)
    if tag == "disk":
        target = node.find("target")
        dev = target.get("dev") if target is not None else None
        if dev:
            return f"<disk> {show(dev)}"
    return f"<{tag}>"


def _children(node: etree._Element) -> list[etree._Element]:
    return [child for child in node if isinstance(child.tag, str)]


def refused_parts(devices: etree._Element | None) -> list[str]:
    """One sentence per attribute or child of a device element that is not built."""
    if devices is None:
        return []
    problems: list[str] = []
    for node in _children(devices):
        tag = str(node.tag)
        parts = _PARTS.get(tag)
        if parts is None:
            continue
        if tag == "input" and node.get("type") in ("passthrough", "evdev"):
            continue  # refused as a whole (refused_devices)
        if tag == "controller" and node.get("type") in _UNCHECKED_CONTROLLERS:
            continue
        attrs, kids = parts
        where = _name(node)
        extra = sorted(str(key) for key in node.attrib if key not in attrs)
        if extra:
            problems.append(
                f"{where}: {', '.join(f'{a}=' for a in extra)} is not implemented; remove it."
            )
        for child in _children(node):
            if child.tag not in kids:
                problems.append(f"{where} <{child.tag}>: not implemented; remove it.")
        problems += _detail(node, where)
    return problems


def _detail(node: etree._Element, where: str) -> list[str]:
    tag = str(node.tag)
    problems: list[str] = []
    if tag == "controller":
        where = f"<controller type='{node.get('type')}' index='{node.get('index') or '0'}'>"
        if node.get("ports") is not None and node.get("type") != "usb":
            problems.append(f"{where}: ports= is not implemented here; remove it.")
        target = node.find("target")
        if target is not None:
            allowed = _PCI_TARGET_ATTRS if node.get("type") == "pci" else ()
            extra = sorted(str(key) for key in target.attrib if key not in allowed)
            if extra:
                problems.append(
                    f"{where} <target>: {', '.join(f'{a}=' for a in extra)} is not "
                    "implemented; remove it."
                )
            for child in _children(target):
                problems.append(f"{where} <target><{child.tag}>: not implemented; remove it.")
    elif tag == "disk":
        target = node.find("target")
        if target is not None:
            extra = sorted(str(key) for key in target.attrib if key not in _TARGET_ATTRS)
            if extra:
                problems.append(
                    f"{where} <target>: {', '.join(f'{a}=' for a in extra)} is not "
                    "implemented; remove it."
                )
            if target.get("tray") not in (None, "closed"):
                problems.append(f"{where} <target tray='open'>: an open tray is not implemented.")
        backing = node.find("backingStore")
        if backing is not None and (len(backing) or backing.attrib):
            problems.append(
                f"{where} <backingStore>: backing chains in the XML are not implemented; "
                "QEMU reads a qcow2 image's backing file from the image itself, so remove it."
            )
        source = node.find("source")
        if source is not None and source.get("startupPolicy") is not None:
            problems.append(f"{where} <source startupPolicy>: not implemented; remove it.")
    elif tag == "interface":
        link = node.find("link")
        if link is not None and link.get("state") not in (None, "up"):
            problems.append(
                f"{where} <link state={show(link.get('state') or '')}>: starting with the link "
                "down is not implemented; remove <link> (the NIC starts connected)."
            )
    elif tag == "graphics":
        policy = node.get("sharePolicy")
        if policy is not None and policy not in _SHARE_POLICIES:
            problems.append(
                f"<graphics sharePolicy={show(policy)}>: write 'allow-exclusive', "
                "'force-shared' or 'ignore'."
            )
        keymap = node.get("keymap")
        if keymap is not None and not (keymap and set(keymap.lower()) <= _KEYMAP_CHARS):
            problems.append(
                f"<graphics keymap={show(keymap)}>: not a keymap name; write e.g. keymap='de'."
            )
    elif tag == "video":
        model = node.find("model")
        if model is not None:
            extra = sorted(str(key) for key in model.attrib if key not in _VIDEO_MODEL_ATTRS)
            if extra:
                problems.append(
                    f"<video> <model>: {', '.join(f'{a}=' for a in extra)} is not "
                    "implemented; remove it."
                )
            for child in _children(model):
                problems.append(f"<video> <model><{child.tag}>: not implemented; remove it.")
    elif tag in ("serial", "console"):
        target = node.find("target")
        for child in _children(target) if target is not None else []:
            if child.tag != "model" or child.get("name") != "isa-serial":
                problems.append(
                    f"<{tag}> <target><{child.tag}>: not implemented; remove it (a serial "
                    "port is an isa-serial)."
                )
    return problems
