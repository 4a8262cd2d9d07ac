"""Fuzzing parse_domain: whatever comes in, only InvalidXML comes out.

Three sources of input: random bytes, random text, and valid documents (the golden
inputs) mutated by inserting, deleting and rewriting elements, attributes and text with
values from a pool of nasty strings. Whatever parses must round-trip, must answer every
property without raising, and must either build a QEMU command line or be refused with
InvalidXML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from drivers.domxml import DomainDef, parse_domain
from drivers.errors import InvalidXML
from drivers.qemu.argv import LaunchContext, build_argv, chardev_aliases, disk_alias

DATA = Path(__file__).parent / "data"
SEEDS = [
    path.read_bytes()
    for folder in ("domxml", "argv")
    for path in sorted((DATA / folder).glob("*.xml"))
    if ".out." not in path.name
]

NASTY = [
    "",
    " ",
    "-1",
    "0",
    "1",
    "4",
    "5900",
    "65536",
    "1e9999",
    "1.5",
    "0x10",
    "1_000",
    "\u0663",
    "9" * 25,
    "9" * 5000,
    str(2**64),
    "\x00",
    "\x1b[31m",
    "lots",
    "yes",
    "no",
    "on",
    "hvm",
    "q35",
    "pc",
    "microvm",
    "x86_64",
    "kvm",
    "test",
    "xen",
    "vnc",
    "spice",
    "cdrom",
    "disk",
    "block",
    "network",
    "bridge",
    "virtio",
    "sata",
    "ide",
    "scsi",
    "usb",
    "ps2",
    "tablet",
    "unix",
    "bind",
    "pty",
    "stdio",
    "serial",
    "qcow2",
    "none",
    "dump",
    "destroy",
    "restart",
    "coredump-restart",
    "host-passthrough",
    "maximum",
    "GiB",
    "MB",
    "b",
    "vda",
    "hda",
    "sdz",
    "vdzzz",
    "/srv/a.img",
    "/a,b",
    "relative/path",
    "../../etc/passwd",
    ".hidden",
    "a/b",
    "a\nb",
    "<",
    "&",
    "'\"",
    "]]>",
    "::1",
    "0.0.0.0",
    "52:54:00:12:34:56",
    "01:00:5e:00:00:01",
    "c7a5fdbd-edaf-9455-926a-d65c16db1809",
    "\u202eevil",
    "\U0001f600",
    "\ud7ff",
    "x" * 300,
]
TAGS = [
    "domain",
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "memory",
    "currentMemory",
    "vcpu",
    "os",
    "type",
    "boot",
    "kernel",
    "initrd",
    "cmdline",
    "features",
    "acpi",
    "cpu",
    "model",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "devices",
    "emulator",
    "disk",
    "driver",
    "source",
    "target",
    "readonly",
    "interface",
    "mac",
    "serial",
    "console",
    "log",
    "graphics",
    "listen",
    "video",
    "input",
    "panic",
    "memballoon",
    "watchdog",
    "controller",
    "channel",
    "{urn:fuzz}thing",
]
ATTRS = [
    "type",
    "id",
    "unit",
    "arch",
    "machine",
    "dev",
    "mode",
    "offset",
    "device",
    "name",
    "cache",
    "file",
    "bus",
    "order",
    "address",
    "network",
    "bridge",
    "path",
    "port",
    "append",
    "autoport",
    "listen",
    "socket",
    "passwd",
    "vram",
    "heads",
    "model",
    "action",
    "{urn:fuzz}attr",
]

# About 300 examples in all keeps the file under ten seconds; the database is off so
# runs leave no .hypothesis directory behind.
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def exercise(defn: DomainDef) -> None:
    """Read everything a caller can read; none of it may raise for a parsed definition."""
    for name in (
        "virt_type",
        "id",
        "name",
        "uuid",
        "title",
        "description",
        "metadata",
        "memory_kib",
        "current_memory_kib",
        "vcpus",
        "os_type",
        "arch",
        "machine",
        "boot_devs",
        "kernel",
        "initrd",
        "cmdline",
        "acpi",
        "cpu_mode",
        "cpu_model",
        "clock_offset",
        "on_poweroff",
        "on_reboot",
        "on_crash",
        "emulator",
        "memballoon",
    ):
        getattr(defn, name)
    assert defn.current_memory_kib <= defn.memory_kib
    views: list[Any] = [
        *defn.disks,
        *defn.interfaces,
        *defn.serials,
        *defn.consoles,
        *defn.graphics,
        *defn.videos,
        *defn.inputs,
        *defn.panics,
        *defn.watchdogs,
    ]
    for view in views:
        for name in dir(type(view)):
            if isinstance(getattr(type(view), name, None), property):
                getattr(view, name)
    for disk in defn.disks:
        disk_alias(disk)
    chardev_aliases(defn)
    # The driver resolves autoport before building the command line.
    for graphics in defn.graphics:
        if graphics.port == -1:
            graphics.port = 5901
    try:
        argv = build_argv(defn, LaunchContext(monitor_fd=3, domain_dir="/run/vd/fuzz"))
    except InvalidXML:
        return
    assert argv[-2:] == ["-msg", "timestamp=on"]


def check(data: str | bytes) -> None:
    try:
        defn = parse_domain(data)
    except InvalidXML as err:
        assert str(err)
        return
    text = defn.to_xml()
    assert parse_domain(text).to_xml() == text
    assert defn.copy().to_xml() == text
    exercise(defn)


@settings(FUZZ, max_examples=40)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    check(data)


@settings(FUZZ, max_examples=40)
@given(st.text(max_size=600))
def test_random_text(data: str) -> None:
    check(data)


@settings(FUZZ, max_examples=40)
@given(
    st.text(alphabet="<>/=' \"abcdemnoprstuvy!?-&;#x0123456789", max_size=200).map(
        lambda tail: "<domain type='qemu'><name>f</name><memory>1</memory>" + tail
    )
)
def test_random_text_after_a_valid_start(data: str) -> None:
    check(data)


def _mutate(draw: st.DrawFn, root: etree._Element, values: list[str]) -> None:
    """One random edit of the tree; nasty values are referenced by placeholder."""

    def value() -> str:
        values.append(draw(st.sampled_from(NASTY)))
        return f"NASTY{len(values) - 1}X"

    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    target = draw(st.sampled_from(elements))
    op = draw(
        st.sampled_from(["delete", "insert", "set-attr", "del-attr", "text", "duplicate", "move"])
    )
    parent = target.getparent()
    if op == "delete" and parent is not None:
        parent.remove(target)
    elif op == "insert":
        child = etree.Element(draw(st.sampled_from(TAGS)))
        if draw(st.booleans()):
            child.set(draw(st.sampled_from(ATTRS)), value())
        if draw(st.booleans()):
            child.text = value()
        target.insert(draw(st.integers(0, len(target))), child)
    elif op == "set-attr":
        target.set(draw(st.sampled_from(ATTRS)), value())
    elif op == "del-attr" and target.attrib:
        del target.attrib[draw(st.sampled_from(sorted(str(k) for k in target.attrib)))]
    elif op == "text":
        target.text = value()
    elif op == "duplicate" and parent is not None:
        target.addnext(etree.fromstring(etree.tostring(target)))
    elif op == "move" and parent is not None:
        others = [e for e in elements if e is not target and target not in e.iterancestors()]
        others = [e for e in others if e not in target.iter()]
        if others:
            draw(st.sampled_from(others)).append(target)


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    root = etree.fromstring(draw(st.sampled_from(SEEDS)))
    values: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        _mutate(draw, root, values)
    text = etree.tostring(root, encoding="unicode")
    for index, raw in enumerate(values):
        placeholder = f"NASTY{index}X"
        # The raw strings go in after serialisation so that characters lxml refuses to
        # store (NUL, escapes) still reach the parser.
        text = text.replace(f'"{placeholder}"', quoteattr(raw))
        text = text.replace(placeholder, escape(raw))
    return text


@settings(FUZZ, max_examples=150)
@given(mutated_documents())
def test_mutated_documents(xml: str) -> None:
    check(xml)


@settings(FUZZ, max_examples=30)
@given(mutated_documents())
def test_mutated_documents_as_bytes(xml: str) -> None:
    try:
        data = xml.encode("utf-8")
    except UnicodeEncodeError:
        data = xml.encode("utf-8", "surrogatepass")
    check(data)
