"""atomic_write leaves the old file or the new one, with the asked mode, and no temporaries."""

from __future__ import annotations

import time
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


def test_a_failed_write_behind_lands_once_the_disk_lets_it(tmp_path: Path) -> None:
    """Found by the chaos tier (disk full): a status write that failed was never tried
    again, so after space came back the file kept the old state until the next change."""
    from drivers.fsutil import WriteBehind

    blocked = tmp_path / "run"
    blocked.write_text("not a directory")  # any write under it fails
    writer = WriteBehind()
    writer.RETRY = 0.05
    target = blocked / "d.json"
    writer.submit(target, "new")
    assert writer.flush(5)
    assert writer.failing == [target] and writer.errors
    blocked.unlink()  # the disk is usable again
    deadline = time.monotonic() + 5
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert target.read_text() == "new"
    assert writer.failing == []
    # a newer write replaces one that waits for a retry
    blocked2 = tmp_path / "run2"
    blocked2.write_text("x")
    writer.submit(blocked2 / "d.json", "old")
    assert writer.flush(5)
    blocked2.unlink()
    blocked2.mkdir()
    writer.submit(blocked2 / "d.json", "newest")
    assert writer.flush(5)
    assert (blocked2 / "d.json").read_text() == "newest"


def test_a_full_disk_is_described_with_what_to_do(tmp_path: Path) -> None:
    import errno

    from drivers.fsutil import describe

    words = describe(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert words == (
        f"no space left on the file system holding {tmp_path} (or its quota is used up); "
        "free some space there and retry"
    )
