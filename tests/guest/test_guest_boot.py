"""Boot the tiny test guest with plain QEMU (no virtdeck code) and check that it
cooperates: serial protocol, ACPI power button, pvpanic, reboot."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from qemu.qmp import EventListener, QMPClient
from qemu.qmp.message import Message

from tests.guest import (
    DONE_RE,
    PONG_RE,
    QEMU_BINARY,
    READY_RE,
    UNKNOWN_RE,
    GuestImage,
    SerialConsole,
    require_guest,
)

pytestmark = pytest.mark.guest

#: Boot -> READY budget.  ~2-5 s under TCG on the test machine; raise it with
#: VIRTDECK_GUEST_BOOT_TIMEOUT on a slow or overloaded host.
BOOT_TIMEOUT = float(os.environ.get("VIRTDECK_GUEST_BOOT_TIMEOUT", "10"))
#: A warm reboot under TCG is much slower and erratic (measured 4-20 s to READY):
#: the kernel decompressor writes over guest pages that still hold translated
#: code of the previous boot; how much depends on where KASLR puts the kernel.
REBOOT_TIMEOUT = float(os.environ.get("VIRTDECK_GUEST_REBOOT_TIMEOUT", "45"))
EVENT_TIMEOUT = 10.0
REPLY_TIMEOUT = 5.0


@dataclass
class RunningGuest:
    proc: asyncio.subprocess.Process
    qmp: QMPClient
    events: EventListener
    console: SerialConsole
    workdir: Path
    started: float
    seen: list[Message] = field(default_factory=list)

    async def wait_event(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda data: True,
        timeout: float = EVENT_TIMEOUT,
    ) -> Message:
        """Next QMP event ``name`` whose data satisfies ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                event = await asyncio.wait_for(self.events.get(), remaining)
            except TimeoutError:
                seen = [(e["event"], e.get("data")) for e in self.seen]
                raise AssertionError(
                    f"no {name} event within {timeout}s; events so far: {seen}; "
                    f"console tail: {self.console.lines[-10:]}"
                ) from None
            self.seen.append(event)
            if event["event"] == name and predicate(_data(event)):
                return event


def _data(event: Message) -> dict[str, Any]:
    data = event.get("data")
    return dict(data) if isinstance(data, dict) else {}


def _workdir() -> Path:
    # AF_UNIX paths are limited to 107 bytes: keep the directory short.
    path = Path(tempfile.mkdtemp(prefix="vdguest-"))
    if len(str(path)) > 80:
        shutil.rmtree(path)
        path = Path(tempfile.mkdtemp(prefix="vdguest-", dir="/tmp"))
    return path


async def _connect_qmp(path: Path, proc: asyncio.subprocess.Process, timeout: float) -> QMPClient:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        qmp = QMPClient("virtdeck-test-guest")
        try:
            await qmp.connect(str(path))
            return qmp
        except Exception as exc:
            if proc.returncode is not None:
                raise RuntimeError(f"qemu exited with rc {proc.returncode}") from exc
            if loop.time() >= deadline:
                raise TimeoutError(f"QMP socket {path} did not accept within {timeout}s") from exc
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def boot_guest(image: GuestImage, *extra_append: str) -> AsyncIterator[RunningGuest]:
    """Start QEMU on the guest image; always kills and reaps QEMU afterwards."""
    workdir = _workdir()
    serial, monitor = workdir / "serial.sock", workdir / "qmp.sock"
    argv = [
        QEMU_BINARY,
        "-machine", "q35",
        "-accel", "tcg",  # never kvm: /dev/kvm on the test machine cannot run Linux
        "-m", "256",
        "-nodefaults",
        "-display", "none",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", " ".join([image.cmdline, *extra_append]),
        "-chardev", f"socket,id=ser0,path={serial},server=on,wait=off",
        "-serial", "chardev:ser0",
        "-device", "pvpanic",
        "-no-shutdown",
        "-qmp", f"unix:{monitor},server=on,wait=off",
    ]  # fmt: skip
    proc: asyncio.subprocess.Process | None = None
    qmp: QMPClient | None = None
    console: SerialConsole | None = None
    try:
        with open(workdir / "qemu.stderr", "wb") as err:
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err
            )
        try:
            console = await SerialConsole.connect(serial, timeout=5.0)
            qmp = await _connect_qmp(monitor, proc, timeout=5.0)
        except Exception as exc:
            err_text = (workdir / "qemu.stderr").read_text(errors="replace")
            raise RuntimeError(f"cannot talk to qemu ({exc}); its stderr:\n{err_text}") from exc
        listener = EventListener()
        qmp.register_listener(listener)
        yield RunningGuest(proc, qmp, listener, console, workdir, started)
    finally:
        if console is not None:
            await console.close()
        if qmp is not None:
            with contextlib.suppress(Exception):  # EOFError if qemu already went away
                await qmp.disconnect()
        if proc is not None:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


async def _wait_ready(guest: RunningGuest, image: GuestImage) -> float:
    match = await guest.console.wait_for(READY_RE, timeout=BOOT_TIMEOUT)
    assert match["kernel"] == image.kernel_version
    return time.monotonic() - guest.started


def test_image_files() -> None:
    image = require_guest()
    assert image.cmdline == "console=tty0 console=ttyS0 panic=-1 quiet"
    assert image.kernel.stat().st_size > 1_000_000
    assert image.kernel_version.endswith("-cloud-amd64")
    with gzip.open(image.initrd) as fh:
        assert fh.read(6) == b"070701"  # cpio newc


@pytest.mark.asyncio
async def test_boot_ping_sh_and_acpi_powerdown() -> None:
    image = require_guest()
    async with boot_guest(image) as guest:
        elapsed = await _wait_ready(guest, image)
        print(f"spawn -> READY {elapsed:.2f} s")

        await guest.console.send("ping")
        await guest.console.wait_for(PONG_RE, timeout=REPLY_TIMEOUT)

        await guest.console.send("sh echo hello-$((6*7)); exit 3")
        await guest.console.wait_for(r"^hello-42$", timeout=REPLY_TIMEOUT)
        done = await guest.console.wait_for(DONE_RE, timeout=REPLY_TIMEOUT)
        assert done["rc"] == "3"

        await guest.console.send("no-such-command")
        unknown = await guest.console.wait_for(UNKNOWN_RE, timeout=REPLY_TIMEOUT)
        assert unknown["cmd"] == "no-such-command"

        await guest.qmp.execute("system_powerdown")
        event = await guest.wait_event(
            "SHUTDOWN", lambda d: d.get("reason") == "guest-shutdown" and d.get("guest") is True
        )
        assert _data(event)["reason"] == "guest-shutdown"
        status = await guest.qmp.execute("query-status")
        assert isinstance(status, dict) and status["status"] == "shutdown"  # -no-shutdown


@pytest.mark.asyncio
async def test_panic_reports_guest_panicked() -> None:
    image = require_guest()
    async with boot_guest(image) as guest:
        await _wait_ready(guest, image)
        await guest.console.send("panic")
        event = await guest.wait_event("GUEST_PANICKED")
        assert _data(event)["action"] == "pause"  # -no-shutdown turns poweroff into pause
        status = await guest.qmp.execute("query-status")
        assert isinstance(status, dict) and status["status"] == "guest-panicked"


@pytest.mark.asyncio
async def test_reboot_resets_and_boots_again() -> None:
    image = require_guest()
    async with boot_guest(image) as guest:
        await _wait_ready(guest, image)
        await guest.console.send("reboot")
        await guest.wait_event("RESET", lambda d: d.get("reason") == "guest-reset")
        # The cursor is past the first READY: this is the second boot's.
        await guest.console.wait_for(READY_RE, timeout=REBOOT_TIMEOUT)
        await guest.console.send("ping")
        await guest.console.wait_for(PONG_RE, timeout=REPLY_TIMEOUT)


@pytest.mark.asyncio
async def test_cmdline_command_runs_after_ready() -> None:
    image = require_guest()
    async with boot_guest(image, 'virtdeck.cmd="sh echo from-cmdline"') as guest:
        await _wait_ready(guest, image)
        await guest.console.wait_for(r"^from-cmdline$", timeout=REPLY_TIMEOUT)
        done = await guest.console.wait_for(DONE_RE, timeout=REPLY_TIMEOUT)
        assert done["rc"] == "0"
        await guest.console.send("poweroff")
        await guest.wait_event("SHUTDOWN", lambda d: d.get("reason") == "guest-shutdown")
