"""What the benchmarks share: percentiles and the diskless domain they start."""

from __future__ import annotations

from collections.abc import Sequence

DISKLESS = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><memballoon model='none'/></devices>
</domain>"""
"""A domain with no disk and no NIC: QEMU under TCG sits in SeaBIOS, cheap to run."""


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
