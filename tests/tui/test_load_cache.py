"""The load cache gives what compiling gives, is ignored when it cannot be trusted, and is
used only while the modules load."""

from __future__ import annotations

import dataclasses
import marshal
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("VIRTDECK_LOAD_CACHE", raising=False)
    yield Path(load_cache.cache_path())
    load_cache.finish()  # a failed test must not leave the hooks in


def compile_all() -> list[re.Pattern[str] | re.Pattern[bytes]]:
    return [re_compiler.compile(pattern, flags) for pattern, flags in PATTERNS]


def make_class() -> type:
    @dataclasses.dataclass(frozen=True, order=True)
    class Row:
        host: str
        vcpus: int = 1
        tags: list[str] = dataclasses.field(default_factory=list)

    return Row


def misses() -> int:
    assert load_cache._state is not None
    return load_cache._state.misses


def test_patterns_and_dataclasses_from_the_cache_equal_compiled_ones(cache: Path) -> None:
    expected = compile_all()
    plain_init = vars(make_class())["__init__"]
    load_cache.install()
    assert compile_all() == expected  # Pattern equality compares the compiled program
    make_class()
    assert misses() > len(PATTERNS)  # the patterns and the dataclass's methods
    load_cache.finish()
    assert cache.stat().st_mode & 0o777 == 0o600

    load_cache.install()
    cached = compile_all()
    row_type = make_class()
    assert misses() == 0
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
    load_cache.finish()
    assert re_compiler.compile is original
    assert "exec" not in vars(dataclasses)


def test_turned_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTDECK_LOAD_CACHE", "0")
    load_cache.install()
    assert load_cache._state is None
    load_cache.finish()
    assert not cache.exists()


def test_only_what_a_run_used_is_kept(cache: Path) -> None:
    load_cache.install()
    re_compiler.compile("old-textual-pattern", 0)
    load_cache.finish()
    load_cache.install()
    compile_all()
    load_cache.finish()
    _header, patterns, _code = marshal.loads(cache.read_bytes())
    assert ("old-textual-pattern", 0) not in patterns
    assert set(patterns) == {(p, int(f)) for p, f in PATTERNS}


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "other python", "group writable", "not a tuple"],
)
def test_untrusted_or_damaged_files_are_ignored(cache: Path, damage: str) -> None:
    load_cache.install()
    compile_all()
    load_cache.finish()
    good = cache.read_bytes()
    header = load_cache._header()
    if damage == "garbage":
        cache.write_bytes(b"\x00not marshal at all")
    elif damage == "truncated":
        cache.write_bytes(good[: len(good) // 2])
    elif damage == "other python":
        _old, patterns, code = marshal.loads(good)
        cache.write_bytes(marshal.dumps(((header[0], "2.7.18", header[2]), patterns, code)))
    elif damage == "group writable":
        os.chmod(cache, 0o620)
    else:
        cache.write_bytes(marshal.dumps([1, 2, 3]))
    load_cache.install()
    assert compile_all() == [re_compiler.compile(p, f) for p, f in PATTERNS]
    assert misses() == len(PATTERNS)  # nothing was taken from the file
    load_cache.finish()
    assert cache.read_bytes() != b"\x00not marshal at all"


def test_virtdeck_start_up_fills_the_cache_once(tmp_path: Path) -> None:
    """Two real start-ups: the first writes the cache, the second compiles nothing new."""
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("VIRTDECK_LOAD_CACHE", None)
    probe = (
        "import tui.cli, tui.app, sys, re, dataclasses;"
        "assert sys.modules['re._compiler'].compile.__module__ == 're._compiler';"
        "assert 'exec' not in vars(dataclasses)"
    )
    path = tmp_path / "virtdeck" / f"load-{sys.implementation.cache_tag}.marshal"
    subprocess.run([sys.executable, "-c", probe], env=env, check=True)
    first = path.stat().st_mtime_ns
    _header, patterns, code = marshal.loads(path.read_bytes())
    assert len(patterns) > 20 and len(code) > 50  # Textual's and rich's
    subprocess.run([sys.executable, "-c", probe], env=env, check=True)
    assert path.stat().st_mtime_ns == first  # every entry came from the file
