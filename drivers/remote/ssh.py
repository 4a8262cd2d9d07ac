"""qemu+ssh:// — reaching a host's daemon over one SSH connection per host.

    qemu+ssh://[user@]host[:port]/session|system[?keyfile=…&known_hosts=…&config=…
                                                  &command=…&keepalive=…]

Design
------
Each :class:`~drivers.remote.client.RemoteConnection` is one SSH *session channel* running
``virtdeckd --stdio --session`` (or ``--system``) on the host; the channel's stdin/stdout
carry the virtdeck protocol unchanged. ``virtdeckd --stdio`` relays the bytes to the
host's one daemon of that mode, which owns the QMP sockets (a QMP monitor serves a single
client, so every client of a host must go through that daemon). We run that command
rather than forwarding the daemon's unix socket through SSH because:

- the relay starts the session daemon on demand, exactly as ``qemu:///session`` does
  locally; a forwarded socket would need the daemon to be running already;
- direct-streamlocal forwarding needs ``AllowStreamLocalForwarding`` on the server, which
  hardened sshd configurations switch off, while running a command always works;
- a failure to start says why on the channel's stderr ("virtdeckd: command not found"),
  which we collect and show.

All channels to one host share one asyncssh connection (one TCP connection, one
authentication): a host key prompt, an agent confirmation or a slow login happens once,
and consoles and migration will open their channels over the same connection. Opening is
serialised per host so two opens don't race to authenticate; the connection is closed
when its last RemoteConnection closes.

The remote side runs the command through the user's login shell, so the command is built
from tokens each passed through :func:`shlex.quote`: ``?command=`` is split like a shell
would (``shlex.split``) and re-quoted, and the mode flag is appended by us. Nothing is
expanded remotely (no ``~``, no ``$VAR``): give absolute paths.

``~/.ssh/config`` (or ``?config=``), the agent, identity files and known_hosts are honoured
the way OpenSSH does. Unknown or changed host keys are always refused, with a message
that says how to check and accept the key. Keepalives every ``?keepalive=`` seconds
(default 1), three unanswered ones end the link, so a dead link is noticed within about
four seconds; every RemoteConnection over it is then told at once (``lose``): calls in
flight raise ConnectionLost and event streams end with a lost ConnectionClosedEvent. A
single channel ending (its remote virtdeckd died) loses only that RemoteConnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from drivers.errors import AccessDenied, ConnectionFailed, InvalidURI
from drivers.remote.client import RemoteConnection
from drivers.uri import URI

# asyncssh logs every channel at INFO; a TUI or CLI that shows INFO would drown in it.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

#: Seconds between keepalives unless ``?keepalive=`` says otherwise.
DEFAULT_KEEPALIVE = 1.0
#: Unanswered keepalives after which the link counts as dead.
KEEPALIVE_COUNT_MAX = 3
#: TCP connect + SSH key exchange, unless the ssh config sets ConnectTimeout.
CONNECT_TIMEOUT = 15.0
#: How much of a remote command's stderr is kept (the end of it, where errors are).
STDERR_LIMIT = 16 << 10
#: Read buffer of one channel: the peer is paused beyond twice this.
READ_LIMIT = 1 << 23
#: How long to wait for the exit status of a remote command that closed its output.
EXIT_GRACE = 2.0

_PARAMS = ("keyfile", "known_hosts", "command", "config", "keepalive", "ro")
_DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class _LinkKey:
    """What makes two URIs share an SSH connection: the peer and what changes the login."""

    user: str | None
    host: str
    port: int | None
    keyfile: str | None
    known_hosts: str | None
    config: str | None

    @property
    def label(self) -> str:
        text = f"{self.user}@" if self.user else ""
        text += f"[{self.host}]" if ":" in self.host else self.host
        return text + (f":{self.port}" if self.port else "")


# --- one channel = one RemoteConnection's byte stream -------------------------------------


class _ReadFlow(asyncio.ReadTransport):
    """Lets a StreamReader pause the SSH channel when its buffer fills (flow control)."""

    def __init__(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        super().__init__()
        self._chan = chan

    def pause_reading(self) -> None:
        self._chan.pause_reading()

    def resume_reading(self) -> None:
        self._chan.resume_reading()


class _Channel(asyncssh.SSHClientSession[bytes]):
    """A session channel running the remote virtdeckd; reader and writer of the protocol.

    Stdout feeds an asyncio.StreamReader; stderr is kept (its last STDERR_LIMIT bytes) to
    explain failures. When the channel ends, ``on_lost`` is called *before* the reader sees
    the end, so the RemoteConnection reports why (exit status, stderr, broken link) instead
    of a bare "closed".
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.reader = asyncio.StreamReader(limit=READ_LIMIT)
        self.stderr = bytearray()
        self.on_lost: Callable[[str], None] | None = None
        self.lost_reason: str | None = None
        self.done = asyncio.Event()
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._eof_timer: asyncio.TimerHandle | None = None
        self.eof_seen = False

    # asyncssh callbacks

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._chan = chan
        self.reader.set_transport(_ReadFlow(chan))

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr += data
            del self.stderr[:-STDERR_LIMIT]
        else:
            self.reader.feed_data(data)

    def eof_received(self) -> bool:
        # The exit status and the channel close follow; hold the EOF back until then so
        # the reason can name them, but not forever if the remote keeps the channel open.
        self.eof_seen = True
        self._eof_timer = asyncio.get_running_loop().call_later(EXIT_GRACE, self.reader.feed_eof)
        return True

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.finish(f"the SSH connection to {self.label} broke ({_describe(exc)})", True)
        else:
            self.finish(self.ended_reason(), False)

    def finish(self, reason: str, broken: bool) -> None:
        """The channel is over: tell the connection why, then end the reader."""
        if self.lost_reason is not None:
            return
        if self._eof_timer is not None:
            self._eof_timer.cancel()
        self.lost_reason = reason
        self._writable.set()
        if self.on_lost is not None:
            self.on_lost(reason)
        if broken:
            self.reader.set_exception(ConnectionResetError(reason))
        else:
            self.reader.feed_eof()
        self.done.set()

    # what the RemoteConnection uses (protocol.ByteReader / ByteWriter)

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    def write(self, data: bytes) -> None:
        if self.lost_reason is not None or self._chan is None:
            raise ConnectionResetError(self.lost_reason or "the channel is not open")
        self._chan.write(data)

    async def drain(self) -> None:
        await self._writable.wait()
        if self.lost_reason is not None:
            raise ConnectionResetError(self.lost_reason)

    def close(self) -> None:
        if self._chan is not None:
            self._chan.close()

    # diagnostics

    def stderr_tail(self, lines: int = 6) -> str:
        text = self.stderr.decode(errors="replace").strip()
        return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())

    def exit_status(self) -> int | None:
        return self._chan.get_exit_status() if self._chan is not None else None

    def exit_signal(self) -> str | None:
        if self._chan is None:
            return None
        info = self._chan.get_exit_signal()
        return info[0] if info else None

    def ended_reason(self) -> str:
        text = f"the remote virtdeckd on {self.label} ended"
        signal_name = self.exit_signal()
        status = self.exit_status()
        if signal_name:
            text += f" (killed by SIG{signal_name})"
        elif status:
            text += f" (exit status {status})"
        tail = self.stderr_tail()
        return text + (f": {tail}" if tail else "")

    async def wait_done(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)


# --- one link = one SSH connection to a host, shared ---------------------------------------


@dataclass
class _KnownHostsCheck:
    """What the known_hosts lookup and the host key check saw, to explain a refusal."""

    files: list[str]
    host: str = ""
    port: int | None = None
    had_keys: bool = False
    offered: asyncssh.SSHKey | None = None


class _Link(asyncssh.SSHClient):
    """One SSH connection to a host and the channels over it (the asyncssh client object)."""

    def __init__(self, key: _LinkKey, registry: _Registry, known: _KnownHostsCheck) -> None:
        self.key = key
        self.registry = registry
        self.known = known
        self.conn: asyncssh.SSHClientConnection | None = None
        self.channels: set[_Channel] = set()
        self.refs = 0
        self.lost_reason: str | None = None
        #: Seconds asyncssh.connect took (TCP, key exchange, authentication).
        self.connect_seconds = 0.0

    # asyncssh.SSHClient callbacks

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # Called only for keys known_hosts does not trust: remember it for the message,
        # and refuse it (virtdeck never accepts unknown host keys).
        self.known.offered = key
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_reason = _describe(exc) if exc else "closed"
        self.registry.forget(self)
        reason = f"the SSH connection to {self.key.label} was lost ({self.lost_reason})"
        # Channels normally hear it first from asyncssh; this covers any that did not.
        for channel in list(self.channels):
            channel.finish(reason, True)

    # known_hosts, as a callable so we learn whether the host had keys at all

    def match_known_hosts(self, host: str, addr: str, port: int | None) -> Any:
        self.known.host, self.known.port = host, port
        known = asyncssh.SSHKnownHosts()
        for name in self.known.files:
            path = Path(name).expanduser()
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue  # like OpenSSH: a missing known_hosts file is an empty one
            try:
                known.load(text)
            except ValueError as err:
                raise ValueError(f"{path} is not a valid known_hosts file: {err}") from None
        result = known.match(host, addr, port)
        self.known.had_keys = bool(result[0])
        return result

    # channels

    async def open_channel(self, command: str) -> _Channel:
        assert self.conn is not None
        try:
            _, session = await self.conn.create_session(
                lambda: _Channel(self.key.label), command, encoding=None
            )
        except asyncssh.ChannelOpenError as err:
            raise ConnectionFailed(
                f"{self.key.label} refused to open another SSH session ({err.reason}); its "
                "sshd may limit sessions per connection (MaxSessions, 10 by default)."
            ) from err
        except (asyncssh.Error, OSError) as err:
            raise ConnectionFailed(
                f"The SSH connection to {self.key.label} failed while opening a session: "
                f"{_describe(err)}."
            ) from err
        assert isinstance(session, _Channel)
        self.channels.add(session)
        return session

    async def release(self, channel: _Channel | None) -> None:
        """One user of the connection is done; the last one closes it."""
        if channel is not None:
            self.channels.discard(channel)
        self.refs -= 1
        if self.refs > 0:
            return
        self.registry.forget(self)
        if self.conn is None:
            return
        self.conn.close()
        try:
            await asyncio.wait_for(self.conn.wait_closed(), 2.0)
        except TimeoutError:
            # A dead link never acknowledges the close; don't wait for TCP to give up.
            self.conn.abort()


@dataclass
class _Registry:
    """The live links of one event loop (asyncio objects belong to their loop)."""

    links: dict[_LinkKey, _Link] = field(default_factory=dict)
    locks: dict[_LinkKey, asyncio.Lock] = field(default_factory=dict)

    def forget(self, link: _Link) -> None:
        if self.links.get(link.key) is link:
            del self.links[link.key]


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = (
    weakref.WeakKeyDictionary()
)
_links_of: weakref.WeakKeyDictionary[RemoteConnection, _Link] = weakref.WeakKeyDictionary()


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = _Registry()
    return registry


def ssh_connection(conn: RemoteConnection) -> asyncssh.SSHClientConnection | None:
    """The SSH connection ``conn`` runs over (None if it is not a qemu+ssh:// connection).

    Consoles and migration open their own channels on it.
    """
    link = _links_of.get(conn)
    return link.conn if link is not None else None


def link_connect_seconds(conn: RemoteConnection) -> float | None:
    """How long establishing the SSH connection under ``conn`` took."""
    link = _links_of.get(conn)
    return link.connect_seconds if link is not None else None


def open_ssh_connections() -> int:
    """How many SSH connections this event loop holds open (for tests and diagnostics)."""
    return len(_registry().links)


# --- opening ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    key: _LinkKey
    mode: str
    program: tuple[str, ...]
    keepalive: float


def _settings(uri: URI) -> _Settings:
    shown = str(uri.without_params())
    mode = uri.path.rstrip("/")
    if mode not in ("/session", "/system"):
        raise InvalidURI(
            f"'{shown}' names no daemon; an SSH URI ends in /session (the user's daemon on "
            "that host) or /system (its system daemon), e.g. qemu+ssh://user@host/system."
        )
    unknown = sorted(set(uri.params) - set(_PARAMS))
    if unknown:
        raise InvalidURI(
            f"'{shown}' has unknown query parameter(s) {', '.join(unknown)}; qemu+ssh:// "
            f"understands {', '.join(_PARAMS)}."
        )
    keepalive_text = uri.param("keepalive") or str(DEFAULT_KEEPALIVE)
    try:
        keepalive = float(keepalive_text)
    except ValueError:
        keepalive = -1.0
    if not 0 < keepalive <= 3600:
        raise InvalidURI(
            f"keepalive={keepalive_text} in '{shown}' is not a number of seconds between 0 "
            "and 3600."
        )
    try:
        program = tuple(shlex.split(uri.param("command") or "virtdeckd"))
    except ValueError as err:
        raise InvalidURI(f"command= in '{shown}' is not a valid command line: {err}.") from err
    if not program:
        raise InvalidURI(f"command= in '{shown}' is empty; name the virtdeckd to run.")
    files: dict[str, str | None] = {}
    for name in ("keyfile", "known_hosts", "config"):
        value = uri.param(name)
        files[name] = str(Path(value).expanduser().absolute()) if value else None
    for name in ("keyfile", "config"):
        value = files[name]
        if value is not None and not Path(value).is_file():
            raise InvalidURI(f"{name}={value} in '{shown}' is not a file.")
    assert uri.host is not None  # parse_uri refuses ssh URIs without a host
    key = _LinkKey(
        uri.user, uri.host, uri.port, files["keyfile"], files["known_hosts"], files["config"]
    )
    return _Settings(key, mode.lstrip("/"), program, keepalive)


def remote_command(program: tuple[str, ...] | list[str], mode: str) -> str:
    """The shell command line the remote user's shell runs: every token quoted."""
    return " ".join(shlex.quote(token) for token in (*program, "--stdio", f"--{mode}"))


async def _acquire(settings: _Settings) -> _Link:
    """The host's shared link, connecting it if there is none; counts one more user."""
    registry = _registry()
    key = settings.key
    lock = registry.locks.setdefault(key, asyncio.Lock())
    async with lock:
        link = registry.links.get(key)
        if link is None or link.lost_reason is not None:
            link = await _connect(settings, registry)
            registry.links[key] = link
        link.refs += 1
        return link


async def _connect(settings: _Settings, registry: _Registry) -> _Link:
    key = settings.key
    options: dict[str, Any] = {
        "port": key.port if key.port is not None else (),
        "username": key.user if key.user is not None else (),
        "config": [key.config] if key.config else (),
        "client_keys": [key.keyfile] if key.keyfile else (),
    }
    try:
        # Resolve ~/.ssh/config first: it says which known_hosts files apply, and whether
        # it sets a ConnectTimeout of its own.
        resolved = await asyncssh.SSHClientConnectionOptions.construct(host=key.host, **options)
    except (OSError, ValueError, asyncssh.Error) as err:
        hint = ""
        if "passphrase" in str(err).lower():
            hint = "; load the key into your agent with ssh-add and drop ?keyfile="
        raise ConnectionFailed(
            f"Cannot prepare the SSH connection to {key.label}: {_describe(err)}{hint}."
        ) from err
    link = _Link(key, registry, _KnownHostsCheck(_known_hosts_files(key, resolved)))
    options["encryption_algs"] = _ciphers(resolved)
    timeout = float(resolved.connect_timeout or CONNECT_TIMEOUT)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        conn = await asyncssh.connect(
            key.host,
            **options,
            known_hosts=link.match_known_hosts,
            client_factory=lambda: link,
            keepalive_interval=settings.keepalive,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
            connect_timeout=timeout,
        )
    except asyncssh.HostKeyNotVerifiable as err:
        raise _host_key_error(link, err) from err
    except asyncssh.PermissionDenied as err:
        who = key.user or "your user name"
        raise AccessDenied(
            f"{key.label} refused the SSH login of {who}: none of the keys offered was "
            "accepted"
            + (f" (keyfile={key.keyfile})" if key.keyfile else " (agent and identity files)")
            + ". Check that your public key is in the host's authorized_keys."
        ) from err
    except asyncssh.DisconnectError as err:
        raise ConnectionFailed(
            f"{key.label} ended the SSH connection while it was being set up: {_describe(err)}."
        ) from err
    except socket.gaierror as err:
        raise ConnectionFailed(f"Cannot find the host '{key.host}': {err.strerror}.") from err
    except ConnectionRefusedError as err:
        raise ConnectionFailed(
            f"{key.host} port {key.port or 22} refused the connection: no SSH server listens there."
        ) from err
    except TimeoutError as err:
        raise ConnectionFailed(
            f"{key.label} did not complete the SSH handshake within {timeout:g} s; is it up "
            "and reachable, and is it an SSH server?"
        ) from err
    except OSError as err:
        raise ConnectionFailed(f"Cannot reach {key.label}: {_describe(err)}.") from err
    except (ValueError, asyncssh.Error) as err:
        raise ConnectionFailed(f"SSH to {key.label} failed: {_describe(err)}.") from err
    link.conn = conn
    link.connect_seconds = loop.time() - started
    return link


#: asyncssh offers chacha20-poly1305 first; AES-GCM (hardware-accelerated on x86) moves
#: bulk data (a tunnelled migration) about twice as fast through asyncssh on our machines:
#: 259 against 107 MiB/s writing, 214 against 153 MiB/s reading, over loopback.
_FAST_FIRST = (b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com")


def _ciphers(resolved: asyncssh.SSHClientConnectionOptions) -> list[str]:
    """The ciphers to offer: the user's own order if ~/.ssh/config sets one, else asyncssh's
    defaults with AES-GCM first."""
    from asyncssh.encryption import get_default_encryption_algs

    offered: list[bytes] = list(resolved.encryption_algs)
    if offered != get_default_encryption_algs():
        order = offered  # Ciphers in the user's ssh config: theirs to choose
    else:
        order = [c for c in _FAST_FIRST if c in offered]
        order += [c for c in offered if c not in _FAST_FIRST]
    return [c.decode("ascii") for c in order]


def _known_hosts_files(key: _LinkKey, options: asyncssh.SSHClientConnectionOptions) -> list[str]:
    """The known_hosts files OpenSSH would read for this host."""
    if key.known_hosts:
        return [key.known_hosts]
    configured = options.known_hosts
    if configured is None:
        # "UserKnownHostsFile none": nothing is trusted, so every host key is refused;
        # virtdeck never falls back to accepting unknown keys.
        return []
    if isinstance(configured, list) and configured:
        return [str(name) for name in configured]
    return [*_DEFAULT_KNOWN_HOSTS, *_GLOBAL_KNOWN_HOSTS]


def _host_key_error(link: _Link, err: asyncssh.HostKeyNotVerifiable) -> ConnectionFailed:
    key = link.key
    known = link.known
    host = known.host or key.host
    port = known.port if known.port is not None else key.port
    where = f"[{host}]:{port}" if port and port != 22 else host
    shown = f"{host}:{port}" if port and port != 22 else host
    file = known.files[0] if known.files else "~/.ssh/known_hosts"
    offered = ""
    host_key_file = "/etc/ssh/ssh_host_*_key.pub"
    if known.offered is not None:
        algorithm = known.offered.get_algorithm()
        kind = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(algorithm)
        if kind or algorithm.startswith("ecdsa"):
            host_key_file = f"/etc/ssh/ssh_host_{kind or 'ecdsa'}_key.pub"
        offered = (
            f" It offers the {known.offered.get_algorithm()} key "
            f"{known.offered.get_fingerprint('sha256')}."
        )
    ssh = ["ssh"]
    if port and port != 22:
        ssh += ["-p", str(port)]
    if key.config:
        ssh += ["-F", key.config]
    if key.known_hosts:
        ssh += ["-o", f"UserKnownHostsFile={key.known_hosts}"]
    ssh.append(f"{key.user}@{host}" if key.user else host)
    scan = ["ssh-keyscan", *(["-p", str(port)] if port and port != 22 else []), host]
    if "revoked" in str(err).lower():
        return ConnectionFailed(
            f"The host key of {shown} is marked as revoked in {file}; virtdeck will not "
            f"connect.{offered} Ask the host's administrator for its current key."
        )
    if known.had_keys:
        remove = ["ssh-keygen", "-R", where] + (["-f", file] if key.known_hosts else [])
        return ConnectionFailed(
            f"WARNING: the host key of {shown} has CHANGED since it was recorded in {file}. "
            "Someone could be intercepting the connection (man-in-the-middle), or the host "
            f"was reinstalled; virtdeck will not connect.{offered} Only after you have "
            "verified the new key with the host's administrator, remove the old entry with "
            f'"{shlex.join(remove)}" and accept the new key with "{shlex.join(ssh)}".'
        )
    return ConnectionFailed(
        f"The host key of {shown} is not known (not in {file}), and virtdeck never accepts "
        f"unknown host keys.{offered} Check that fingerprint with the host's administrator "
        f"(on the host: ssh-keygen -lf {host_key_file}), then accept it by "
        f'connecting once with "{shlex.join(ssh)}", or with '
        f'"{shlex.join(scan)} >> {_shell_path(file)}".'
    )


def _shell_path(path: str) -> str:
    """``path`` for a shell command line; a leading ~/ stays unquoted so it expands."""
    if path.startswith("~/") and shlex.quote(path[2:]) == path[2:]:
        return path
    return shlex.quote(path)


def _describe(err: BaseException) -> str:
    if isinstance(err, asyncssh.DisconnectError):
        return err.reason or type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def _start_failure(channel: _Channel, settings: _Settings, err: ConnectionFailed) -> Exception:
    """Why the remote virtdeckd did not answer the handshake, in words a user can act on."""
    key = settings.key
    status = channel.exit_status()
    tail = channel.stderr_tail()
    lowered = tail.lower()
    # 127 and 126 are the shell's "not found" and "not executable"; the daemon's own
    # failures exit 1 and may well mention a missing file themselves.
    if status in (126, 127) or (status is None and "command not found" in lowered):
        whose = f"{key.user}'s" if key.user else "your"
        return ConnectionFailed(
            f'virtdeck is not installed on {key.host}, or "{settings.program[0]}" is not on '
            f"the PATH of {whose} non-interactive shell there"
            + (f" (the remote shell said: {tail})" if tail else "")
            + ". Install it there, or point the URI at it with ?command=, e.g. "
            f"qemu+ssh://{key.label}/{settings.mode}?command=/opt/virtdeck/bin/virtdeckd or "
            "?command=python3%20-m%20drivers.daemon."
        )
    if status is not None or channel.exit_signal() or tail:
        return ConnectionFailed(
            f"virtdeckd on {key.host} gave up before answering: {channel.ended_reason()}"
            + ("." if tail else "; it printed nothing on stderr.")
        )
    if channel.lost_reason is not None:
        return ConnectionFailed(f"Opening {key.label} failed: {channel.lost_reason}.")
    return err


async def open_ssh(uri: URI) -> RemoteConnection:
    """A handshaken connection to the daemon ``uri`` names, over the host's SSH link."""
    settings = _settings(uri)
    link = await _acquire(settings)
    try:
        channel = await link.open_channel(remote_command(settings.program, settings.mode))
    except BaseException:
        await link.release(None)
        raise

    async def release() -> None:
        await link.release(channel)

    conn = RemoteConnection(channel, channel, str(uri), on_close=release)
    try:
        await conn.handshake()
    except ConnectionFailed as err:
        if channel.eof_seen:
            await channel.wait_done(EXIT_GRACE)  # for the exit status
        channel.close()
        await link.release(channel)
        raise _start_failure(channel, settings, err) from err
    except BaseException:
        channel.close()
        await link.release(channel)
        raise
    _links_of[conn] = link
    # From now on the end of the channel (or of the whole link) loses this connection.
    if channel.lost_reason is not None:
        conn.lose(channel.lost_reason)
    else:
        channel.on_lost = conn.lose
    return conn


__all__ = [
    "link_connect_seconds",
    "open_ssh",
    "open_ssh_connections",
    "remote_command",
    "ssh_connection",
]
