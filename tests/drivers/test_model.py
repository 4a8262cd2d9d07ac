"""Enum names and values are libvirt's; words are virsh's."""

from __future__ import annotations

from drivers.errors import NoSuchDomain, VirtError, error_classes
from drivers.model import (
    DomainState,
    EventType,
    LifecycleEvent,
    RunningReason,
    ShutoffReason,
    StartedDetail,
    StoppedDetail,
    state_words,
)
from drivers.uri import parse_uri


def test_libvirt_values_and_virsh_words() -> None:
    assert int(DomainState.RUNNING) == 1 and int(RunningReason.BOOTED) == 1
    assert DomainState.SHUTOFF.words == "shut off"
    assert state_words(DomainState.RUNNING, RunningReason.BOOTED) == "running (booted)"
    assert state_words(DomainState.SHUTOFF, ShutoffReason.CRASHED) == "shut off (crashed)"
    assert DomainState.RUNNING.reason(99) is RunningReason.UNKNOWN
    assert EventType.STOPPED.detail(5) is StoppedDetail.FAILED
    event = LifecycleEvent(
        domain="a", uuid="u", type=EventType.STARTED, detail=StartedDetail.BOOTED
    )
    assert event.words == "Started Booted"
    assert event.monotonic > 0 and event.wall > 1e9


def test_error_classes_by_name() -> None:
    classes = error_classes()
    assert classes["NoSuchDomain"] is NoSuchDomain
    assert all(issubclass(c, VirtError) for c in classes.values())


def test_uri_round_trip() -> None:
    for text in (
        "qemu:///session",
        "qemu+ssh://root@host:2222/system?keyfile=/k",
        "test:///default",
        "qemu:///embed?root=/tmp/x",
    ):
        assert str(parse_uri(text)) == text
