"""How the differential runner normalises and compares (no libvirt, no QEMU)."""

from __future__ import annotations

from tests.differential.scenario import Observation, normalise
from tests.differential.test_differential import _adjusted, report


def test_normalise_keeps_lifecycle_words_and_counts_a_run_of_reboots_once() -> None:
    lines = [
        "event 'lifecycle' for domain 'vddiff-g': Crashed Panicked",
        "event 'reboot' for domain 'vddiff-g'",
        "event 'reboot' for domain 'vddiff-g'",
        "event 'lifecycle' for domain 'vddiff-g': Resumed Unpaused",
        "event 'reboot' for domain 'vddiff-g'",
        "event 'job-completed' for domain 'vddiff-g':",
        "events received: 6",
    ]
    events, other = normalise(lines)
    assert events == ["Crashed Panicked", "(reboot)", "Resumed Unpaused", "(reboot)"]
    assert other == ["job-completed"]


def test_the_racy_suspend_is_set_aside_on_libvirt_only() -> None:
    racy = ["Suspended Paused", "Crashed Panicked", "Stopped Crashed"]
    theirs = _adjusted("libvirt", [Observation("panic.destroy", "shut off (crashed)", [*racy])])
    ours = _adjusted("virtdeck", [Observation("panic.destroy", "shut off (crashed)", [*racy])])
    assert theirs[0].events == racy[1:] and "set aside" in theirs[0].note
    assert ours[0].events == racy  # virtdeck handles events in order: it must never show it
    table, bad = report(theirs, ours)
    assert bad == 1 and table.startswith("≠ panic.destroy")


def test_a_missing_step_is_a_difference() -> None:
    one = [Observation("define", "shut off (unknown)", ["Defined Added"])]
    table, bad = report(one, [])
    assert bad == 1 and "(step not reached)" in table
    assert report(one, list(one))[1] == 0
