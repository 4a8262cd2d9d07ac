"""Numbers in domain XML: plain integers and libvirt's scaled sizes (``unit='MiB'``)."""

from __future__ import annotations

import re

from drivers.domxml.tree import XML_SPACE, show
from drivers.errors import InvalidXML

# Python's int() also accepts '1_000', '٣' and surrounding Unicode spaces; XML numbers
# are plain ASCII digits.
_DIGITS_RE = re.compile(r"-?[0-9]+", re.ASCII)
# int() refuses strings over 4300 digits with a ValueError; nothing sensible is that long.
_MAX_DIGITS = 30

# libvirt matches units case-insensitively: 'k', 'KiB' and 'kib' are 1024; a unit
# spelled with a bare 'B' after the prefix ('KB', 'mb') counts in powers of 1000.
_BINARY = {prefix: 1 << (10 * power) for power, prefix in enumerate("kmgtpe", start=1)}
_DECIMAL = {prefix: int("1" + "000" * power) for power, prefix in enumerate("kmgtpe", start=1)}
UNIT_HINT = "b, KiB, MiB, GiB or TiB (KB, MB, GB and TB count in powers of 1000)"

MAX_MEMORY_KIB = 1 << 53
"""The largest memory size accepted (8 EiB): sizes in bytes must fit QEMU's 64-bit sizes."""


def parse_int(
    text: str | None,
    where: str,
    example: str,
    *,
    low: int,
    high: int | None,
) -> int:
    """``text`` as an integer in ``low..high``, or InvalidXML naming ``where``."""
    value = (text or "").strip(XML_SPACE)
    if not value:
        raise InvalidXML(f"{where} is empty; write a number, e.g. {example}.")
    if len(value) > _MAX_DIGITS or not _DIGITS_RE.fullmatch(value):
        raise InvalidXML(f"{where}: {show(value)} is not a number; write e.g. {example}.")
    number = int(value)
    if number < 0 <= low:
        raise InvalidXML(f"{where}: {number} is negative; write e.g. {example}.")
    if high is None and number < low:
        raise InvalidXML(
            f"{where}: {number} is too small; write a number of at least {low}, e.g. {example}."
        )
    if high is not None and not low <= number <= high:
        raise InvalidXML(
            f"{where}: {number} is out of range; write a number from {low} to {high}, "
            f"e.g. {example}."
        )
    return number


def unit_scale(unit: str | None) -> int | None:
    """Bytes per ``unit`` (None means KiB, libvirt's default), or None if unknown."""
    if unit is None:
        return 1024
    name = unit.lower()
    if name in ("b", "byte", "bytes"):
        return 1
    prefix, rest = name[:1], name[1:]
    if rest in ("", "ib"):
        return _BINARY.get(prefix)
    if rest == "b":
        return _DECIMAL.get(prefix)
    return None


def scaled_kib(text: str | None, unit: str | None, where: str, example: str) -> int:
    """A libvirt scaled size in KiB, rounded up as libvirt does; InvalidXML if malformed."""
    scale = unit_scale(unit)
    if scale is None:
        raise InvalidXML(
            f"{where}: unit={show(unit or '')} is not a size unit; write one of {UNIT_HINT}, "
            f"e.g. {example}."
        )
    count = parse_int(text, where, example, low=0, high=None)
    kib = -(-count * scale // 1024)
    if kib > MAX_MEMORY_KIB:
        raise InvalidXML(
            f"{where}: {kib} KiB is more than the limit of {MAX_MEMORY_KIB} KiB (8 EiB); "
            f"write a smaller size, e.g. {example}."
        )
    return kib
