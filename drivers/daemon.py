"""``virtdeckd``: the host daemon that owns one driver and serves it.

    virtdeckd [--session | --system] [--driver URI] [--stdio] [--socket PATH]
              [--socket-mode MODE] [--socket-group GROUP] [--detach]

Session mode (the default): definitions and logs under $XDG_DATA_HOME/virtdeck, the socket,
pid file and guests' runtime status under $XDG_RUNTIME_DIR/virtdeck (else a private
directory in the temp dir). System mode (root): /var/lib/virtdeck and
/run/virtdeck/virtdeckd.sock. ``--driver test:///default`` serves the in-memory driver.

``--stdio`` serves one client on stdin/stdout, which is how a remote client reaches a host
over SSH. With ``--driver`` it serves that driver itself; without, it relays to the host's
daemon of that mode (starting the session daemon if needed), so every client of a host
shares one daemon, which owns the QEMU monitors.

Stopping the daemon (SIGTERM, or even SIGKILL) leaves guests running; the next daemon
reconnects to them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.api import Connection
    from drivers.remote.server import Server

log = logging.getLogger("virtdeckd")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="virtdeckd", description="The virtdeck host daemon.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--session", action="store_true", help="per-user daemon (default)")
    mode.add_argument("--system", action="store_true", help="system daemon (root)")
    parser.add_argument("--driver", metavar="URI", help="serve this driver (e.g. test:///default)")
    parser.add_argument("--stdio", action="store_true", help="serve one client on stdin/stdout")
    parser.add_argument("--socket", type=Path, help="listen on this socket path")
    parser.add_argument(
        "--socket-mode", default=None, help="socket permissions, octal (0600 session, 0660 system)"
    )
    parser.add_argument("--socket-group", help="group owning the system socket")
    parser.add_argument("--detach", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-queue", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


class AlreadyRunning(Exception):
    pass


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(str(path)) from None
    return fd


async def _serve(args: argparse.Namespace) -> int:
    import drivers
    from drivers.remote import local

    paths = local.system_paths() if args.system else local.session_paths()
    if args.system and os.geteuid() != 0:
        print("error: the system daemon must run as root.", file=sys.stderr)
        return 1
    local.private_dir(paths.runtime) if not args.system else paths.runtime.mkdir(
        parents=True, exist_ok=True, mode=0o755
    )
    if args.driver:
        uri = args.driver
    else:
        paths.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        uri = f"qemu:///embed?root={paths.state}&run={paths.runtime / 'run'}"
    public_uri = "qemu:///system" if args.system else "qemu:///session"
    if args.driver:
        public_uri = args.driver

    if args.stdio and args.driver:
        conn = await drivers.open(uri)
        server = _server(conn, public_uri, args)
        reader, writer = await _stdio_streams()
        try:
            await server.handle(reader, writer, "stdio")
        finally:
            await server.close("virtdeckd is shutting down")
            await conn.close()
        return 0

    socket_path = args.socket or paths.socket
    try:
        lock_fd = _take_lock(socket_path.with_name(socket_path.name + ".lock"))
    except AlreadyRunning:
        print(f"virtdeckd: a daemon already serves {socket_path}; exiting.", file=sys.stderr)
        return 0
    try:
        conn = await drivers.open(uri)
    except drivers.VirtError as err:
        print(f"error: {err}", file=sys.stderr)
        os.close(lock_fd)
        return 1
    server = _server(conn, public_uri, args)
    mode = int(args.socket_mode, 8) if args.socket_mode else (0o660 if args.system else 0o600)
    await server.listen_unix(socket_path, mode=mode, group=args.socket_group)
    pidfile = socket_path.with_name("virtdeckd.pid")
    pidfile.write_text(f"{os.getpid()}\n")
    log.info("serving %s on %s (pid %d)", uri, socket_path, os.getpid())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.close("virtdeckd is shutting down; guests keep running")
    await conn.close()
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    os.close(lock_fd)
    return 0


def _server(conn: Connection, uri: str, args: argparse.Namespace) -> Server:
    from drivers.remote.server import MAX_QUEUE, Server

    return Server(conn, uri, max_queue=args.max_queue or MAX_QUEUE)


async def _stdio_streams() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 23)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout.buffer
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def _relay(args: argparse.Namespace) -> int:
    """--stdio without --driver: pass bytes between stdio and the host's daemon."""
    from drivers.remote import local

    if args.system:
        socket_path = args.socket or local.system_paths().socket
    else:
        paths = local.session_paths()
        socket_path = args.socket or paths.socket
    loop = asyncio.get_running_loop()
    deadline = loop.time() + local.AUTOSTART_TIMEOUT
    spawned = False
    while True:
        try:
            d_reader, d_writer = await asyncio.open_unix_connection(str(socket_path))
            break
        except (FileNotFoundError, ConnectionRefusedError) as err:
            if args.system or loop.time() > deadline:
                print(f"error: no virtdeck daemon listens on {socket_path}: {err}", file=sys.stderr)
                return 1
            # No socket, or one a killed daemon left behind: start one, once (a second
            # daemon would find the first one's lock and exit).
            if not spawned:
                spawned = True
                await asyncio.to_thread(local.spawn_session_daemon, local.session_paths())
            await asyncio.sleep(0.02)
        except PermissionError:
            print(f"error: you may not use {socket_path}.", file=sys.stderr)
            return 1
    s_reader, s_writer = await _stdio_streams()

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(1 << 16):
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    up = asyncio.create_task(pump(s_reader, d_writer))
    down = asyncio.create_task(pump(d_reader, s_writer))
    await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    up.cancel()
    down.cancel()
    return 0


def _detach() -> None:
    """Fork so the caller's process returns at once; the child keeps serving."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()


def _set_title(argv: list[str]) -> None:
    """Show as ``virtdeckd --session`` in ps and as ``virtdeckd`` in top and pgrep, as
    libvirtd does, instead of ``python3 -m drivers.daemon …``."""
    # Within the room of the original command line: setproctitle otherwise moves the
    # environment to make space, and /proc/PID/environ would no longer show it.
    os.environ.setdefault("SPT_NOENV", "1")
    try:
        import setproctitle
    except ImportError:  # a checkout run without the dependency installed
        return
    words = [word for word in argv if word != "--detach"]
    setproctitle.setproctitle(" ".join(["virtdeckd", *words]))
    setproctitle.setthreadtitle("virtdeckd")  # the name top and pgrep show (comm)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _set_title(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s virtdeckd[%(process)d] %(levelname)s %(message)s",
    )
    if args.detach:
        _detach()
    try:
        if args.stdio and not args.driver:
            return asyncio.run(_relay(args))
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
