"""Frozen records: the typed values that cross the driver boundary.

``@record`` makes a class what ``@dataclass(frozen=True)`` would (fields from the class's
annotations, keyword-only if asked, defaults and default factories, ``==``, ``hash``,
``repr``, immutability), and type checkers treat it as one (``dataclass_transform``).

Why not the standard decorator: it writes each class's methods as source text and compiles
them with ``exec`` (2.5 ms a class on our CI machines), and importing :mod:`dataclasses`
loads :mod:`inspect`, :mod:`ast` and :mod:`dis` (another 25 ms). The model's sixteen classes
cost a ``virtdeck list`` about 60 ms of a run that must stay under ``virsh list``'s. Here the
methods are shared functions that read the class's field table, so a class costs what its
``class`` statement costs.
"""

from __future__ import annotations

from collections.abc import Callable

# Not typing.TYPE_CHECKING: importing typing costs a one-shot ``virtdeck list`` ~3 ms of its
# ~20 ms budget, and no module on that path needs typing at run time (annotations are not
# evaluated). mypy treats any ``TYPE_CHECKING`` name as true. Modules on the one-shot path
# (tui.cli, tui.virsh, drivers.model, drivers.remote.{paths,protocol,calls,syncclient}) do
# the same.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform, overload

    _T = TypeVar("_T")

_MISSING: Any = object()


class FrozenRecordError(AttributeError):
    """Raised on an attempt to change a field of a record."""


class _Factory:
    """A field's default factory (see :func:`field`)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], _T]) -> _T:
    """A field whose default is made by calling ``default_factory`` for each record."""
    return _Factory(default_factory)  # type: ignore[return-value]


class _Spec:
    """One class's fields: names in order, which ones go by position, their defaults."""

    __slots__ = ("defaults", "factories", "known", "names", "positional")

    def __init__(self, names: tuple[str, ...], positional: tuple[str, ...]) -> None:
        self.names = names
        self.known = frozenset(names)
        self.positional = positional
        self.defaults: dict[str, object] = {}
        self.factories: dict[str, Callable[[], object]] = {}


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _build_spec(cls: type, kw_only: bool) -> _Spec:
    inherited: _Spec | None = None
    for base in cls.__mro__[1:]:
        inherited = base.__dict__.get("__record_spec__")
        if inherited is not None:
            break
    names = list(inherited.names) if inherited else []
    positional = list(inherited.positional) if inherited else []
    defaults = dict(inherited.defaults) if inherited else {}
    factories = dict(inherited.factories) if inherited else {}
    # not inspect.get_annotations: importing inspect is what this module avoids
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        if name not in names:
            names.append(name)
            if not kw_only:
                positional.append(name)
        value = cls.__dict__.get(name, _MISSING)
        defaults.pop(name, None)
        factories.pop(name, None)
        if isinstance(value, _Factory):
            factories[name] = value.make
            delattr(cls, name)
        elif value is not _MISSING:
            defaults[name] = value
    seen_default = False
    for name in positional:
        if name in defaults or name in factories:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    spec = _Spec(tuple(names), tuple(positional))
    spec.defaults = defaults
    spec.factories = factories
    return spec


def _init(self: Any, *args: object, **kwargs: object) -> None:
    spec: _Spec = type(self).__record_spec__
    if args:
        _take_positional(spec, type(self).__name__, args, kwargs)
    values = dict(spec.defaults)
    values.update(kwargs)
    if spec.factories:
        for name, make in spec.factories.items():
            if name not in kwargs:
                values[name] = make()
    if values.keys() != spec.known:
        _refuse(spec, type(self).__name__, values)
    self.__dict__.update(values)


def _take_positional(
    spec: _Spec, name_of: str, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    if len(args) > len(spec.positional):
        raise TypeError(
            f"{name_of}() takes {len(spec.positional)} positional arguments "
            f"but {len(args)} were given"
        )
    for name, value in zip(spec.positional, args, strict=False):
        if name in kwargs:
            raise TypeError(f"{name_of}() got multiple values for argument {name!r}")
        kwargs[name] = value


def _refuse(spec: _Spec, name_of: str, values: dict[str, object]) -> None:
    """Raise the TypeError a dataclass would for arguments that do not fit."""
    for name in values:
        if name not in spec.known:
            raise TypeError(f"{name_of}() got an unexpected keyword argument {name!r}")
    for name in spec.names:
        if name not in values:
            raise TypeError(f"{name_of}() missing required argument: {name!r}")


def _setattr(self: Any, name: str, value: object) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r} of a {type(self).__name__}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r} of a {type(self).__name__}")


def _values(self: Any) -> tuple[object, ...]:
    values = self.__dict__
    return tuple(values[name] for name in type(self).__record_spec__.names)


def _eq(self: object, other: object) -> object:
    if type(other) is not type(self):
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _repr(self: Any) -> str:
    values = self.__dict__
    inner = ", ".join(f"{n}={values[n]!r}" for n in type(self).__record_spec__.names)
    return f"{type(self).__qualname__}({inner})"


def _record(cls: type[_T] | None, kw_only: bool) -> Any:
    def make(cls: type[_T]) -> type[_T]:
        spec = _build_spec(cls, kw_only)
        # setattr: mypy would (rightly, in general) refuse assigning methods to a class
        for name, value in (
            ("__record_spec__", spec),
            ("__init__", _init),
            ("__setattr__", _setattr),
            ("__delattr__", _delattr),
            ("__eq__", _eq),
            ("__hash__", _hash),
            ("__repr__", _repr),
            ("__match_args__", spec.positional),
        ):
            setattr(cls, name, value)
        return cls

    return make if cls is None else make(cls)


if TYPE_CHECKING:

    @overload
    def record(cls: type[_T], /) -> type[_T]: ...

    @overload
    def record(*, kw_only: bool = False) -> Callable[[type[_T]], type[_T]]: ...

    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def record(cls: type[_T] | None = None, /, *, kw_only: bool = False) -> Any:
        """Make ``cls`` a frozen record (``@record`` or ``@record(kw_only=True)``)."""
        return _record(cls, kw_only)

else:

    def record(cls=None, /, *, kw_only=False):
        """Make ``cls`` a frozen record (``@record`` or ``@record(kw_only=True)``)."""
        return _record(cls, kw_only)


def fields(value: object) -> tuple[str, ...]:
    """The field names of a record or record class, in order."""
    spec = getattr(value, "__record_spec__", None)
    if not isinstance(spec, _Spec):
        raise TypeError(f"{value!r} is not a record")
    return spec.names


def replace(value: _T, /, **changes: object) -> _T:
    """A copy of the record ``value`` with some fields changed."""
    values = {name: getattr(value, name) for name in fields(value)}
    values.update(changes)
    return type(value)(**values)
