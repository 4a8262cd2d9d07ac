"""A cache of what loading Textual costs, so that the next start-up skips it.

Loading Textual, rich and asyncio imports some 300 modules, compiles some 60 regular
expressions and writes some 200 dataclass methods as source text that is then compiled. On
our machines that is 300 ms or more of a start-up, and it gives the same results every time.
This cache keeps three kinds of results between runs:

- modules: each module's code object, read from one file instead of being looked for along
  ``sys.path`` and read from its own ``.pyc`` (the looking is most of the cost);
- regular expressions: for each (pattern, flags), the program :mod:`re` compiles it to,
  which ``_sre.compile`` turns into the same ``Pattern`` without parsing it again;
- dataclass methods: for each piece of source text :mod:`dataclasses` executes, its code.

It is used only while the modules load (:func:`install` before, :func:`finish` after):
modules imported later and patterns a user types are handled the ordinary way.

When a hit is given: a module only when its source file has the size and modification
time it had when its code was stored (the check Python makes of a ``.pyc``), and only when
``sys.path`` and its directories are as they were, so that no new file can shadow it; the
other entries by their exact input; everything only under the same Python build and
optimisation level. The file holds code that is executed, so it is read only when it
belongs to the user and nobody else can write to it. A file that cannot be read is ignored.

After a run that loaded anything the file did not hold, the file is written again
(atomically): what this run used, plus older entries that are still valid as long as they
are not more than what was used (so that runs loading different modules do not take turns
rewriting it, and entries from an older Textual do not pile up).

``VIRTDECK_LOAD_CACHE=0`` turns it off.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader
from types import CodeType
from typing import Any

FORMAT = 2
"""Bumped whenever what the file holds changes shape."""
_MAGIC = b"vdload" + FORMAT.to_bytes(2, "big")

_Key = tuple[str | bytes, int]
_Program = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]
_Module = tuple[str, list[str] | None, int, int, int, int]
"""origin, submodule search locations (packages), source mtime_ns, source size, then where
its marshalled code lies after the index: offset and length."""
_LENGTH_BYTES = 8
_PREFIX = len(_MAGIC) + _LENGTH_BYTES
"""The file: magic, the index's length, the index (marshalled), the modules' code."""


class _CachedLoader(SourceFileLoader):
    """The ordinary loader of a source module, except that its code is already at hand."""

    def __init__(self, fullname: str, path: str, blob: bytes) -> None:
        super().__init__(fullname, path)
        self.blob = blob

    def get_code(self, fullname: str) -> CodeType | None:
        blob, self.blob = self.blob, b""
        if blob and fullname == self.name:
            try:
                code = marshal.loads(blob)
            except (EOFError, ValueError, TypeError):
                code = None  # damaged: read the .pyc as usual
            if isinstance(code, CodeType):
                return code
        return super().get_code(fullname)


class _State:
    """The file's entries, what this run used, and what the hooks replaced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.patterns: dict[_Key, _Program] = {}
        self.code: dict[str, CodeType] = {}
        self.modules: dict[str, _Module] = {}
        self.fd = -1
        self.blobs_at = 0
        self.used_patterns: dict[_Key, _Program] = {}
        self.used_code: dict[str, CodeType] = {}
        self.served: set[str] = set()
        self.before: set[str] = set()
        self.misses = 0
        self.compiler: Any = None
        self.original_compile: Any = None
        self.dataclasses: Any = None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def blob(self, entry: _Module) -> bytes:
        return os.pread(self.fd, entry[5], self.blobs_at + entry[4])

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        """The meta-path finder's one method: a spec for a stored module still current."""
        entry = self.modules.get(fullname)
        if entry is None or not _current(entry):
            return None
        try:
            blob = self.blob(entry)
        except OSError:
            return None
        if len(blob) != entry[5]:
            return None
        origin, locations = entry[0], entry[1]
        self.served.add(fullname)
        loader = _CachedLoader(fullname, origin, blob)
        spec = ModuleSpec(fullname, loader, origin=origin, is_package=locations is not None)
        if locations is not None:
            spec.submodule_search_locations = list(locations)
        spec.has_location = True
        return spec


_state: _State | None = None


def cache_path() -> str:
    """One file per Python installation (an environment), so that two of them sharing a
    home do not take turns rewriting one file."""
    import binascii

    from drivers.xdg import virtdeck_dir  # tui.config's cache_dir, before pathlib loads

    where = binascii.crc32(f"{sys.prefix}\0{sys.executable}".encode())
    name = f"load-{sys.implementation.cache_tag}-{where:08x}"
    return os.path.join(virtdeck_dir("XDG_CACHE_HOME", ".cache"), name)


def _internals() -> tuple[Any, Any]:
    """re's compiler and the C engine it feeds (not public API: keyed by sys.version)."""
    import re  # noqa: F401 - loads both

    return sys.modules["re._compiler"], sys.modules["_sre"]


def _mtime(path: str) -> int:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return -1


def _header() -> tuple[Any, ...]:
    """What the file is valid for: this format, Python build, regex engine, optimisation
    level, and module search path with each directory's modification time."""
    return (
        FORMAT,
        sys.version,
        _internals()[1].MAGIC,
        sys.flags.optimize,
        tuple(sys.path),
        tuple(_mtime(entry) for entry in sys.path),
    )


def _current(entry: _Module) -> bool:
    try:
        info = os.stat(entry[0])
    except OSError:
        return False
    return info.st_mtime_ns == entry[2] and info.st_size == entry[3]


def _read(state: _State) -> None:
    """Fill ``state`` from its file, unless the file is missing, foreign, writable by
    others, made for another Python or search path, or damaged."""
    try:
        fd = os.open(state.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        info = os.fstat(fd)
        if (
            info.st_uid != os.getuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            or not stat.S_ISREG(info.st_mode)
        ):
            raise ValueError("not trusted")
        prefix = os.pread(fd, _PREFIX, 0)
        length = int.from_bytes(prefix[len(_MAGIC) :], "big")
        if not prefix.startswith(_MAGIC) or length > info.st_size - _PREFIX:
            raise ValueError("not a load cache of this format, or truncated")
        index = os.pread(fd, length, _PREFIX)
        data = marshal.loads(index)
        if not (isinstance(data, tuple) and len(data) == 4 and data[0] == _header()):
            raise ValueError("made for another Python or search path")
        patterns, code, modules = data[1:]
        if not all(isinstance(part, dict) for part in (patterns, code, modules)):
            raise ValueError("damaged")
    except (OSError, EOFError, ValueError, TypeError):
        os.close(fd)
        return
    state.patterns, state.code, state.modules = patterns, code, modules
    state.fd, state.blobs_at = fd, _PREFIX + length


def install() -> None:
    """Load the cache, put its module finder first and hook the regular-expression compiler
    and dataclasses' exec."""
    global _state
    if _state is not None or os.environ.get("VIRTDECK_LOAD_CACHE") == "0":
        return
    flush()  # an earlier round's file first (tests load twice in one process)
    import dataclasses
    import re

    compiler, sre = _internals()
    state = _State(cache_path())
    _read(state)
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
    state.before = set(sys.modules)
    compiler.compile = compile_pattern
    state.dataclasses.exec = exec_source  # shadows the builtin in that module only
    sys.meta_path.insert(0, state)
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
    """Unhook. If this run loaded anything the file did not hold, the file is written
    again when the process exits (or at :func:`flush`), not on the way to the first screen:
    writing it means reading back every module's code."""
    global _state, _pending
    state, _state = _state, None
    if state is None:
        return
    sys.meta_path.remove(state)
    state.compiler.compile = state.original_compile
    del state.dataclasses.exec
    loaded = _loaded_modules(state)
    if state.misses or any(name not in state.served for name in loaded):
        import atexit

        _pending = (state, loaded)
        atexit.register(flush)
    else:
        state.close()


_pending: tuple[_State, dict[str, ModuleSpec]] | None = None


def flush() -> None:
    """Write the file now if :func:`finish` left it to be written."""
    global _pending
    pending, _pending = _pending, None
    if pending is not None:
        state, loaded = pending
        try:
            _write(state, loaded)
        finally:
            state.close()


def _loaded_modules(state: _State) -> dict[str, ModuleSpec]:
    """The source modules this run imported while the cache was in."""
    loaded: dict[str, ModuleSpec] = {}
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if name in state.before or spec is None or not spec.origin:
            continue
        if type(spec.loader) in (SourceFileLoader, _CachedLoader):
            loaded[name] = spec
    return loaded


def _write(state: _State, loaded: dict[str, ModuleSpec]) -> None:
    try:
        # each module's entry, with its code (None: the code is in the old file)
        used: dict[str, tuple[_Module, bytes | None]] = {}
        for name, spec in loaded.items():
            old = state.modules.get(name)
            if name in state.served and old is not None:
                used[name] = (old, None)
                continue
            origin = spec.origin or ""
            info = os.stat(origin)
            code = SourceFileLoader(name, origin).get_code(name)
            found = spec.submodule_search_locations
            locations = list(found) if found is not None else None
            entry = (origin, locations, info.st_mtime_ns, info.st_size, 0, 0)
            used[name] = (entry, marshal.dumps(code))
        held = {name: (e, None) for name, e in state.modules.items() if _current(e)}
        modules: dict[str, _Module] = {}
        blobs: list[bytes] = []
        offset = 0
        for name, (entry, blob) in _keep(used, held).items():
            blob = state.blob(entry) if blob is None else blob
            modules[name] = (*entry[:4], offset, len(blob))
            blobs.append(blob)
            offset += len(blob)
        patterns = _keep(state.used_patterns, state.patterns)
        code_kept = _keep(state.used_code, state.code)
        index = marshal.dumps((_header(), patterns, code_kept, modules))
        length = len(index).to_bytes(_LENGTH_BYTES, "big")
        data = b"".join([_MAGIC, length, index, *blobs])
        from pathlib import Path

        from drivers.fsutil import atomic_write

        atomic_write(Path(state.path), data, durable=False)
    except (OSError, ImportError, ValueError):
        pass  # a cache: the next run loads the ordinary way and tries again


def _keep(used: dict[Any, Any], held: dict[Any, Any]) -> dict[Any, Any]:
    """What this run used, and the rest of what the file held (still valid) if that is not
    more: the one rule for modules, patterns and code."""
    others = {key: value for key, value in held.items() if key not in used}
    return {**used, **others} if len(others) <= len(used) else dict(used)
