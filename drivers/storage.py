"""A host's default storage pool: one directory of disk and ISO images.

:class:`DirectoryPool` keeps real files and creates images with ``qemu-img``;
:class:`MemoryPool` is the test driver's stand-in. Names are plain file names (no
directories), so a client can never reach outside the pool.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from drivers.errors import (
    DomainExists,
    HypervisorError,
    InvalidArgument,
    NotSupported,
    OperationFailed,
    OperationInvalid,
)
from drivers.model import PoolInfo, VolumeInfo

VOLUME_NAME_MAX = 200
VOLUME_CHARS = "A-Za-z0-9._+-"
"""What an image name may contain (after a first letter or digit)."""
_NAME = re.compile(rf"^[A-Za-z0-9][{VOLUME_CHARS}]{{0,{VOLUME_NAME_MAX - 1}}}$")
_SUFFIX = {".qcow2": "qcow2", ".img": "raw", ".raw": "raw", ".iso": "iso"}
MAX_CAPACITY = 1 << 50  # 1 PiB: anything above is a typo

#: Given an image path, the names of the running domains that use it.
UsersOf = Callable[[str], list[str]]


def check_volume(name: str, capacity_bytes: int | None = None, fmt: str | None = None) -> str:
    """Validate a new volume; returns its format. Raises InvalidArgument with a sentence."""
    if not _NAME.match(name):
        raise InvalidArgument(
            f"'{name}' is not a valid image name; use letters, digits, '.', '_', '+' or '-' "
            "(no '/'), starting with a letter or digit."
        )
    suffix = Path(name).suffix.lower()
    if suffix not in _SUFFIX or _SUFFIX[suffix] == "iso":
        raise InvalidArgument(
            f"'{name}' needs the suffix .qcow2 (qcow2) or .img/.raw (raw) so its format is clear."
        )
    wanted = fmt or _SUFFIX[suffix]
    if wanted != _SUFFIX[suffix]:
        raise InvalidArgument(f"'{name}' has a {_SUFFIX[suffix]} suffix but format '{wanted}'.")
    if capacity_bytes is not None and not 1 << 20 <= capacity_bytes <= MAX_CAPACITY:
        raise InvalidArgument("An image must be between 1 MiB and 1 PiB.")
    return wanted


class DirectoryPool:
    def __init__(self, path: Path, users_of: UsersOf, name: str = "default") -> None:
        self.path = path
        self.name = name
        self._users_of = users_of

    def _file(self, name: str) -> Path:
        if not _NAME.match(name):
            raise InvalidArgument(f"'{name}' is not an image name of this pool.")
        return self.path / name

    async def info(self) -> PoolInfo:
        self.path.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self.path)
        return PoolInfo(self.name, str(self.path), usage.total, usage.free)

    async def _describe(self, file: Path) -> VolumeInfo | None:
        fmt = _SUFFIX.get(file.suffix.lower())
        if fmt is None or not file.is_file():
            return None
        stat = file.stat()
        capacity = stat.st_size
        if fmt == "qcow2":
            capacity = await _qcow2_size(file) or capacity
        return VolumeInfo(file.name, str(file), fmt, capacity, stat.st_blocks * 512)

    async def list(self) -> list[VolumeInfo]:
        self.path.mkdir(parents=True, exist_ok=True)
        found = []
        for file in sorted(self.path.iterdir()):
            volume = await self._describe(file)
            if volume is not None:
                found.append(volume)
        return found

    async def create(self, name: str, capacity_bytes: int, fmt: str | None) -> VolumeInfo:
        fmt = check_volume(name, capacity_bytes, fmt)
        file = self._file(name)
        if file.exists():
            raise DomainExists(f"The image {name} already exists in {self.path}.")
        self.path.mkdir(parents=True, exist_ok=True)
        await create_image(file, fmt, capacity_bytes)
        volume = await self._describe(file)
        assert volume is not None
        return volume

    async def delete(self, name: str) -> None:
        file = self._file(name)
        if not file.is_file():
            raise InvalidArgument(f"There is no image {name} in {self.path}.")
        users = self._users_of(str(file))
        if users:
            raise OperationInvalid(
                f"The image {name} is in use by running domain(s) {', '.join(users)}; stop "
                "them first."
            )
        try:
            file.unlink()
        except OSError as err:
            raise OperationFailed(f"Could not delete {name}: {err.strerror}.") from err


async def create_image(file: Path, fmt: str, capacity_bytes: int) -> None:
    """An empty image at ``file``, made under a temporary name so a half-made image is never
    seen; raises HypervisorError (or NotSupported without qemu-img)."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise NotSupported("qemu-img is not installed on this host (apt-get install qemu-utils).")
    partial = file.with_name(f".{file.name}.partial")
    proc = await asyncio.create_subprocess_exec(
        qemu_img, "create", "-q", "-f", fmt, str(partial), str(capacity_bytes),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise HypervisorError(f"qemu-img could not create {file}: {err.decode().strip()}")
    os.replace(partial, file)


async def image_size(file: Path) -> int | None:
    """The virtual size of a disk image (qcow2 or raw), or None if it cannot be read."""
    size = await _qcow2_size(file)
    if size is not None:
        return size
    try:
        return file.stat().st_size
    except OSError:
        return None


async def _qcow2_size(file: Path) -> int | None:
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        qemu_img, "info", "-U", "--output=json", str(file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    try:
        return int(json.loads(out)["virtual-size"])
    except (ValueError, KeyError, TypeError):
        return None


class MemoryPool:
    """The test driver's pool: volumes that exist only in memory."""

    def __init__(self, path: str, users_of: UsersOf, seed: list[VolumeInfo] | None = None) -> None:
        self.path = path
        self._users_of = users_of
        self.volumes: dict[str, VolumeInfo] = {v.name: v for v in seed or []}

    async def info(self) -> PoolInfo:
        used = sum(v.allocation_bytes for v in self.volumes.values())
        return PoolInfo("default", self.path, 100 << 30, (100 << 30) - used)

    async def list(self) -> list[VolumeInfo]:
        return [self.volumes[n] for n in sorted(self.volumes)]

    async def create(self, name: str, capacity_bytes: int, fmt: str | None) -> VolumeInfo:
        fmt = check_volume(name, capacity_bytes, fmt)
        if name in self.volumes:
            raise DomainExists(f"The image {name} already exists in {self.path}.")
        volume = VolumeInfo(name, f"{self.path}/{name}", fmt, capacity_bytes, 0)
        self.volumes[name] = volume
        return volume

    async def delete(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None:
            raise InvalidArgument(f"There is no image {name} in {self.path}.")
        users = self._users_of(volume.path)
        if users:
            raise OperationInvalid(
                f"The image {name} is in use by running domain(s) {', '.join(users)}; stop "
                "them first."
            )
        del self.volumes[name]
