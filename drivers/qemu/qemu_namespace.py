"""libvirt's QEMU XML namespace: ``<qemu:commandline>`` and what virtdeck does with it.

``<qemu:arg value=…>`` elements are appended to the command line after everything
virtdeck builds (where libvirt appends them, before its -sandbox/-msg), and ``<qemu:env
name= value=>`` variables are set in QEMU's environment, as libvirt does. Like libvirt,
virtdeck does not look inside the arguments: they are the user's responsibility (libvirt
taints such a domain as "custom-argv"). Other elements of the namespace
(``<qemu:capabilities>``, ``<qemu:override>``, ``<qemu:deprecation>``) are refused.
"""

from __future__ import annotations

import re

from lxml import etree

from drivers.domxml import DomainDef
from drivers.domxml.tree import show

NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"
_ARG = f"{{{NAMESPACE}}}arg"
_ENV = f"{{{NAMESPACE}}}env"
_COMMANDLINE = f"{{{NAMESPACE}}}commandline"
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def _blocks(defn: DomainDef) -> list[etree._Element]:
    return [node for node in defn.root if isinstance(node.tag, str) and node.tag == _COMMANDLINE]


def refused_namespace(defn: DomainDef) -> list[str]:
    """Sentences for the parts of the qemu namespace virtdeck does not apply."""
    problems: list[str] = []
    for node in defn.root:
        if not isinstance(node.tag, str) or not node.tag.startswith(f"{{{NAMESPACE}}}"):
            continue
        local = etree.QName(node).localname
        if local != "commandline":
            problems.append(
                f"<qemu:{local}>: this part of libvirt's QEMU namespace is not implemented; "
                "remove it (virtdeck applies <qemu:commandline> only)."
            )
            continue
        for child in node:
            if not isinstance(child.tag, str):
                continue
            if child.tag == _ARG:
                if child.get("value") is None:
                    problems.append("<qemu:arg> needs value=…; write <qemu:arg value='-S'/>.")
            elif child.tag == _ENV:
                name = child.get("name") or ""
                if not _ENV_NAME_RE.fullmatch(name):
                    problems.append(
                        f"<qemu:env name={show(name)}>: not an environment variable name; "
                        "write e.g. <qemu:env name='QEMU_AUDIO_DRV' value='none'/>."
                    )
            else:
                problems.append(
                    f"<qemu:commandline><{etree.QName(child).localname}>: write <qemu:arg> "
                    "or <qemu:env> elements only."
                )
    return problems


def extra_args(defn: DomainDef) -> list[str]:
    """The ``<qemu:arg value>`` list, in document order."""
    return [
        child.get("value") or ""
        for block in _blocks(defn)
        for child in block
        if isinstance(child.tag, str) and child.tag == _ARG
    ]


def environment(defn: DomainDef) -> dict[str, str]:
    """The ``<qemu:env>`` variables."""
    return {
        child.get("name") or "": child.get("value") or ""
        for block in _blocks(defn)
        for child in block
        if isinstance(child.tag, str) and child.tag == _ENV
    }
