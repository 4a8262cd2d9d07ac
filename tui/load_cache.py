"""A cache of the code that Textual and rich generate while they load.

Loading them compiles some 60 regular expressions and writes some 200 dataclass methods as
source text that is then compiled: together 50 ms or more of every start-up on our machines,
to produce the same results every time. This cache keeps those results between runs:

- for each regular expression (pattern, flags), the program :mod:`re` compiles it to, which
  ``_sre.compile`` turns into the same ``Pattern`` object without parsing it again;
- for each piece of source text :mod:`dataclasses` executes, its code object.

It is used only while the modules load (:func:`install` before, :func:`finish` after): the
patterns a user types later are compiled the ordinary way. Entries are keyed by their exact
input, and the file by the exact Python build, so a hit gives what compiling would have
given. The file holds code that is executed, so it is read only when it belongs to the user
and nobody else can write to it. A file that cannot be read is ignored; it is rewritten
(atomically) after a run that compiled anything it did not hold, with only what that run
used, so entries from an older Textual do not pile up.

``VIRTDECK_LOAD_CACHE=0`` turns it off.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
from types import CodeType
from typing import Any

FORMAT = 1
"""Bumped whenever what the file holds changes shape."""

_Key = tuple[str | bytes, int]
_Program = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]


class _State:
    """The loaded entries, what this run used, and what the hooks replaced."""

    def __init__(self, path: str, patterns: dict[_Key, _Program], code: dict[str, CodeType]):
        self.path = path
        self.patterns = patterns
        self.code = code
        self.used_patterns: dict[_Key, _Program] = {}
        self.used_code: dict[str, CodeType] = {}
        self.misses = 0
        self.compiler: Any = None
        self.original_compile: Any = None
        self.dataclasses: Any = None


_state: _State | None = None


def cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "virtdeck", f"load-{sys.implementation.cache_tag}.marshal")


def _internals() -> tuple[Any, Any]:
    """re's compiler and the C engine it feeds (not public API: keyed by sys.version)."""
    import re  # noqa: F401 - loads both

    return sys.modules["re._compiler"], sys.modules["_sre"]


def _header() -> tuple[int, str, int]:
    return (FORMAT, sys.version, _internals()[1].MAGIC)


def _read(path: str) -> tuple[dict[_Key, _Program], dict[str, CodeType]]:
    """The file's entries, or empty ones if it is missing, foreign, writable by others,
    from another Python, or damaged."""
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if (
                info.st_uid != os.getuid()
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                or not stat.S_ISREG(info.st_mode)
            ):
                return {}, {}
            data = marshal.load(fh)
    except (OSError, EOFError, ValueError, TypeError):
        return {}, {}
    if (
        isinstance(data, tuple)
        and len(data) == 3
        and data[0] == _header()
        and isinstance(data[1], dict)
        and isinstance(data[2], dict)
    ):
        return data[1], data[2]
    return {}, {}


def install() -> None:
    """Load the cache and hook the regular-expression compiler and dataclasses' exec."""
    global _state
    if _state is not None or os.environ.get("VIRTDECK_LOAD_CACHE") == "0":
        return
    import dataclasses
    import re

    compiler, sre = _internals()
    path = cache_path()
    state = _State(path, *_read(path))
    original = compiler.compile

    def compile_pattern(pattern: Any, flags: int = 0) -> Any:
        if not isinstance(pattern, (str, bytes)) or flags & re.DEBUG:
            return original(pattern, flags)
        key = (pattern, int(flags))
        program = state.patterns.get(key)
        if program is None:
            program = state.patterns[key] = _program(compiler, pattern, int(flags))
            state.misses += 1
        state.used_patterns[key] = program
        return sre.compile(pattern, *program)

    def exec_source(source: Any, namespace: Any = None, local_names: Any = None) -> None:
        if not isinstance(source, str):
            exec(source, namespace, local_names)
            return
        code = state.code.get(source)
        if code is None:
            # dont_inherit: compiled as dataclasses itself would (this module's
            # `from __future__ import annotations` must not leak into the methods)
            code = state.code[source] = compile(source, "<string>", "exec", dont_inherit=True)
            state.misses += 1
        state.used_code[source] = code
        exec(code, namespace, local_names)

    state.compiler, state.original_compile = compiler, original
    state.dataclasses = dataclasses
    compiler.compile = compile_pattern
    state.dataclasses.exec = exec_source  # shadows the builtin in that module only
    _state = state


def _program(compiler: Any, pattern: str | bytes, flags: int) -> _Program:
    """What re._compiler.compile hands to _sre.compile, in a form marshal can store."""
    parsed = compiler._parser.parse(pattern, flags)
    code = [int(op) for op in compiler._code(parsed, flags)]
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    return (
        int(flags | parsed.state.flags),
        code,
        parsed.state.groups - 1,
        groupindex,
        tuple(indexgroup),
    )


def finish() -> None:
    """Unhook; write the cache if this run compiled anything it did not hold."""
    global _state
    state, _state = _state, None
    if state is None:
        return
    if state.compiler is not None:
        state.compiler.compile = state.original_compile
    if state.dataclasses is not None:
        del state.dataclasses.exec
    if state.misses:
        _write(state)


def _write(state: _State) -> None:
    from pathlib import Path

    from drivers.fsutil import atomic_write

    data = marshal.dumps((_header(), state.used_patterns, state.used_code))
    try:
        atomic_write(Path(state.path), data)
    except OSError:
        pass  # a cache: the next run compiles again
