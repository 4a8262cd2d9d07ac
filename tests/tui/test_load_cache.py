"""The load cache gives what loading and compiling give, is ignored when it cannot be
trusted, notices changed sources, and is used only while the modules load."""

from __future__ import annotations

import dataclasses
import marshal
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tui import load_cache

re_compiler = sys.modules["re._compiler"]
ROOT = Path(__file__).resolve().parents[2]

PATTERNS: list[tuple[str | bytes, int]] = [
    (r"(?P<word>\w+)\s+(\d+)?", 0),
    (r"(?i)virt(?:deck|sh)", 0),
    (r"^\s*# (.*)$", re.MULTILINE | re.VERBOSE),
    (b"[a-z]+\x00", re.IGNORECASE),
    (r"a|b|c", re.ASCII),
]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VIRTDECK_LOAD_CACHE", raising=False)
    yield Path(load_cache.cache_path())
    load_cache.finish()  # a failed test must not leave the hooks in
    load_cache.flush()


def loaded_once() -> None:
    """finish() and the write it leaves for the process's exit."""
    load_cache.finish()
    load_cache.flush()


def compile_all() -> list[re.Pattern[str] | re.Pattern[bytes]]:
    return [re_compiler.compile(pattern, flags) for pattern, flags in PATTERNS]


def make_class() -> type:
    @dataclasses.dataclass(frozen=True, order=True)
    class Row:
        host: str
        vcpus: int = 1
        tags: list[str] = dataclasses.field(default_factory=list)

    return Row


def state() -> Any:
    assert load_cache._state is not None
    return load_cache._state


def index(path: Path) -> tuple[Any, ...]:
    data = path.read_bytes()
    length = int.from_bytes(data[len(load_cache._MAGIC) : load_cache._PREFIX], "big")
    result = marshal.loads(data[load_cache._PREFIX : load_cache._PREFIX + length])
    assert isinstance(result, tuple)
    return result


def test_patterns_and_dataclasses_from_the_cache_equal_compiled_ones(cache: Path) -> None:
    expected = compile_all()
    plain_init = vars(make_class())["__init__"]
    load_cache.install()
    assert compile_all() == expected  # Pattern equality compares the compiled program
    make_class()
    assert state().misses > len(PATTERNS)  # the patterns and the dataclass's methods
    loaded_once()
    assert cache.stat().st_mode & 0o777 == 0o600

    load_cache.install()
    cached = compile_all()
    row_type = make_class()
    assert state().misses == 0
    load_cache.finish()
    assert cached == expected
    assert [p.groupindex for p in cached] == [p.groupindex for p in expected]
    assert [p.flags for p in cached] == [p.flags for p in expected]
    first = cached[0]
    assert isinstance(first.pattern, str)
    assert re.fullmatch(first.pattern, "vm 42") is not None
    # the methods behave as dataclasses' own, annotations included (not turned into
    # strings by the cache module's `from __future__ import annotations`)
    row = row_type("a", 2)
    assert row == row_type("a", 2) and row < row_type("b")
    assert repr(row) == "make_class.<locals>.Row(host='a', vcpus=2, tags=[])"
    assert vars(row_type)["__init__"].__annotations__ == plain_init.__annotations__
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.host = "b"


def test_the_hooks_are_gone_after_loading(cache: Path) -> None:
    original = re_compiler.compile
    load_cache.install()
    assert re_compiler.compile is not original
    assert "exec" in vars(dataclasses)
    assert state() in sys.meta_path
    load_cache.finish()
    assert re_compiler.compile is original
    assert "exec" not in vars(dataclasses)
    assert not any(isinstance(finder, load_cache._State) for finder in sys.meta_path)


def test_turned_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTDECK_LOAD_CACHE", "0")
    load_cache.install()
    assert load_cache._state is None
    loaded_once()
    assert not cache.exists()


def test_what_a_run_used_is_kept_and_old_entries_do_not_pile_up(cache: Path) -> None:
    load_cache.install()
    re_compiler.compile("pattern-of-another-run", 0)
    loaded_once()
    load_cache.install()
    compile_all()
    loaded_once()
    patterns = index(cache)[1]
    # one older entry, fewer than this run used: kept (runs that load different things
    # must not take turns rewriting the file)
    assert set(patterns) == {(p, int(f)) for p, f in PATTERNS} | {("pattern-of-another-run", 0)}
    load_cache.install()
    re_compiler.compile("only-this", 0)
    loaded_once()
    # now the older entries outnumber what was used: dropped
    assert set(index(cache)[1]) == {("only-this", 0)}


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "old format", "other python", "group writable", "not a tuple"],
)
def test_untrusted_or_damaged_files_are_ignored(cache: Path, damage: str) -> None:
    load_cache.install()
    compile_all()
    loaded_once()
    good = cache.read_bytes()
    header, patterns, code, modules = index(cache)
    if damage == "garbage":
        cache.write_bytes(b"\x00not marshal at all")
    elif damage == "truncated":
        cache.write_bytes(good[: len(good) // 2])
    elif damage == "old format":  # the first format had no magic and no length
        cache.write_bytes(marshal.dumps((header, patterns, code)))
    elif damage == "other python":
        other = marshal.dumps(((header[0], "2.7.18", *header[2:]), patterns, code, modules))
        cache.write_bytes(load_cache._MAGIC + len(other).to_bytes(8, "big") + other)
    elif damage == "group writable":
        os.chmod(cache, 0o620)
    else:
        cache.write_bytes(load_cache._MAGIC + (3).to_bytes(8, "big") + marshal.dumps(3))
    load_cache.install()
    assert compile_all() == [re_compiler.compile(p, f) for p, f in PATTERNS]
    assert state().misses == len(PATTERNS)  # nothing was taken from the file
    loaded_once()
    assert index(cache)[0] == load_cache._header()  # written again, whole


def write_module(directory: Path, text: str) -> None:
    source = directory / "vd_cached_probe.py"
    before = source.stat().st_mtime_ns if source.exists() else 0
    source.write_text(text)
    # a different size or a later time: what tells a changed source apart
    os.utime(source, ns=(time.time_ns(), max(time.time_ns(), before + 1_000_000_000)))


def import_probe() -> Any:
    sys.modules.pop("vd_cached_probe", None)
    import vd_cached_probe  # type: ignore[import-not-found]

    return vd_cached_probe


def run_caching(directory: Path, value: str) -> Any:
    """One run that imports a probe module saying ``value``, from ``directory``."""
    write_module(directory, f"VALUE = {value!r}\n")
    load_cache.install()
    module = import_probe()
    loaded_once()
    return module


@pytest.fixture
def probe_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    early, late = tmp_path / "early", tmp_path / "late"
    early.mkdir()
    late.mkdir()
    monkeypatch.setattr(sys, "path", [str(early), str(late), *sys.path])
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield early, late
    sys.modules.pop("vd_cached_probe", None)


def test_modules_come_from_the_cache_until_their_source_changes(
    cache: Path, probe_dirs: tuple[Path, Path]
) -> None:
    _early, late = probe_dirs
    assert run_caching(late, "first").VALUE == "first"

    load_cache.install()
    module = import_probe()
    load_cache.finish()
    assert type(module.__loader__) is load_cache._CachedLoader
    assert module.VALUE == "first"
    assert module.__file__ == str(late / "vd_cached_probe.py")

    module = run_caching(late, "second, longer")
    assert type(module.__loader__) is not load_cache._CachedLoader
    assert module.VALUE == "second, longer"

    load_cache.install()
    assert import_probe().VALUE == "second, longer"  # the file was written again
    load_cache.finish()


def test_a_new_file_earlier_on_the_path_is_not_shadowed(
    cache: Path, probe_dirs: tuple[Path, Path]
) -> None:
    early, late = probe_dirs
    run_caching(late, "late")
    time.sleep(0.01)
    write_module(early, "VALUE = 'early'\n")
    load_cache.install()
    assert import_probe().VALUE == "early"
    load_cache.finish()


def test_virtdeck_start_up_fills_the_cache_once(tmp_path: Path) -> None:
    """Real start-ups: the first writes the cache as it exits, the next load everything
    from it and leave it as it was."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("VIRTDECK_LOAD_CACHE", None)
    probe = (
        "import tui.cli, tui.app, sys, dataclasses\n"
        "from tui import load_cache\n"
        "assert sys.modules['re._compiler'].compile.__module__ == 're._compiler'\n"
        "assert 'exec' not in vars(dataclasses)\n"
        "loaders = {type(m.__spec__.loader).__name__ for n, m in sys.modules.items()"
        " if n.startswith('textual.')}\n"
        "print(' '.join(sorted(loaders)))\n"
    )
    cache = tmp_path / "cache" / "virtdeck"

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            cwd=workdir,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    assert run() == "SourceFileLoader"
    [path] = cache.glob(f"load-{sys.implementation.cache_tag}-*")
    first = path.stat().st_mtime_ns
    _header, patterns, code, modules = index(path)
    assert len(patterns) > 20 and len(code) > 50 and len(modules) > 200
    assert "textual.app" in modules and "tui.screens.main" in modules
    assert run() == "_CachedLoader"
    assert path.stat().st_mtime_ns == first  # nothing new: not written again
