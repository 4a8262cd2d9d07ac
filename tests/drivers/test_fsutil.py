"""atomic_write leaves the old file or the new one, with the asked mode, and no temporaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.fsutil import atomic_write


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_replaces_whole_files(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "deep" / "file.bin"
    atomic_write(target, "first", durable=durable)
    atomic_write(target, b"second", mode=0o640, durable=durable)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    atomic_write(target, "old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
