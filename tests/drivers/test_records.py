"""drivers.records: frozen records behave as frozen dataclasses do."""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest

from drivers.model import (
    DomainState,
    DomainSummary,
    EventType,
    LifecycleEvent,
    RunningReason,
    StartedDetail,
)
from drivers.records import FrozenRecordError, field, fields, record, replace

_made: list[int] = []


def _counter() -> int:
    _made.append(1)
    return len(_made)


@record
class Point:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


@record(kw_only=True)
class Base:
    a: int
    serial: int = field(default_factory=_counter)


@record(kw_only=True)
class Child(Base):
    b: str
    a: int = 5


def test_positional_keyword_defaults_and_factories() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags) == (1, 0, [])
    assert Point(1, 2).y == 2
    assert Point(x=1, y=3).y == 3
    assert Point(1).tags is not Point(1).tags  # a fresh default per record
    assert Point.kind == "point" and "kind" not in fields(Point)
    assert fields(p) == ("x", "y", "tags")


def test_wrong_arguments_are_refused_like_dataclasses() -> None:
    with pytest.raises(TypeError, match="missing required argument: 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Point(1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional arguments"):
        Point(1, 2, [], 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional arguments"):
        Child(1, "b")  # type: ignore[call-arg,arg-type]


def test_inheritance_keeps_order_and_overrides_defaults() -> None:
    c = Child(b="x")
    assert fields(c) == ("a", "serial", "b")
    assert c.a == 5 and c.b == "x"
    assert Child(b="x").serial != Child(b="x").serial
    with pytest.raises(TypeError, match="missing required argument: 'a'"):
        Base()  # type: ignore[call-arg]


def test_frozen_equal_hashable_and_printable() -> None:
    p = Point(1, 2)
    with pytest.raises(FrozenRecordError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert Point(1, 2) != (1, 2, [])  # type: ignore[comparison-overlap]
    summary = DomainSummary("a", "u", 1, DomainState.RUNNING, RunningReason.BOOTED)
    assert hash(summary) == hash(replace(summary))
    assert len({summary, replace(summary)}) == 1
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"


def test_replace_and_pickle() -> None:
    summary = DomainSummary("a", "u", None, DomainState.SHUTOFF, RunningReason.UNKNOWN)
    moved = replace(summary, name="b")
    assert moved.name == "b" and summary.name == "a" and moved.uuid == "u"
    event = LifecycleEvent(
        domain="a",
        uuid="u",
        type=EventType.STARTED,
        detail=StartedDetail.BOOTED,
    )
    assert pickle.loads(pickle.dumps(event)) == event
    match summary:
        case DomainSummary(name, uuid):
            assert (name, uuid) == ("a", "u")
        case _:
            pytest.fail("positional patterns follow the fields")


def test_non_default_after_default_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]
