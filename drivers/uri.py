"""libvirt-style connection URIs: ``driver[+transport]://[user@]host[:port]/path?query``."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlsplit

from drivers.errors import InvalidURI
from drivers.records import field, record

_KNOWN_DRIVERS = ("qemu", "test")
_KNOWN_TRANSPORTS = ("unix", "ssh")


@record
class URI:
    """A parsed connection URI."""

    driver: str
    transport: str | None = None
    user: str | None = None
    host: str | None = None
    port: int | None = None
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def is_remote(self) -> bool:
        """True when the URI names another host or a transport."""
        return bool(self.host) or self.transport is not None

    def param(self, name: str, default: str | None = None) -> str | None:
        """One query parameter, or ``default``."""
        return self.params.get(name, default)

    def __str__(self) -> str:
        scheme = self.driver + (f"+{self.transport}" if self.transport else "")
        netloc = ""
        if self.user:
            netloc += quote(self.user, safe="") + "@"
        if self.host:
            netloc += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            netloc += f":{self.port}"
        text = f"{scheme}://{netloc}{quote(self.path, safe='/')}"
        if self.params:
            text += "?" + "&".join(
                f"{quote(k, safe='')}={quote(v, safe='/')}" for k, v in self.params.items()
            )
        return text

    def without_params(self) -> URI:
        """The same URI with no query parameters (what to show a user)."""
        return URI(self.driver, self.transport, self.user, self.host, self.port, self.path)


def parse_uri(text: str) -> URI:
    """Parse ``text`` into a :class:`URI` or raise :class:`InvalidURI` saying why."""
    text = text.strip()
    if not text:
        raise InvalidURI("The connection URI is empty; use e.g. qemu:///session.")
    if "://" not in text:
        raise InvalidURI(
            f"'{text}' is not a connection URI; expected something like qemu:///session, "
            "qemu+ssh://user@host/system or test:///default."
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as err:
        raise InvalidURI(f"'{text}' is not a valid connection URI: {err}.") from err
    scheme = parts.scheme.lower()
    driver, _, transport = scheme.partition("+")
    if driver not in _KNOWN_DRIVERS:
        raise InvalidURI(
            f"Unknown driver '{driver}' in '{text}'; virtdeck knows "
            + ", ".join(f"{d}://" for d in _KNOWN_DRIVERS)
            + "."
        )
    if transport and transport not in _KNOWN_TRANSPORTS:
        raise InvalidURI(
            f"Unknown transport '{transport}' in '{text}'; use qemu+ssh:// for remote hosts."
        )
    if transport == "ssh" and not parts.hostname:
        raise InvalidURI(f"'{text}' uses ssh but names no host; write qemu+ssh://host/system.")
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params[key] = value
    return URI(
        driver=driver,
        transport=transport or None,
        user=unquote(parts.username) if parts.username else None,
        host=parts.hostname or None,
        port=port,
        path=unquote(parts.path),
        params=params,
    )


def is_read_only(uri: URI) -> bool:
    """``?ro=1`` (or yes/on/true): the connection may look but change nothing."""
    return (uri.param("ro") or "").lower() in ("1", "yes", "on", "true")


def with_read_only(text: str) -> str:
    """``text`` with ``ro=1`` added to its query."""
    uri = parse_uri(text)
    return str(URI(uri.driver, uri.transport, uri.user, uri.host, uri.port, uri.path,
                   {**uri.params, "ro": "1"}))  # fmt: skip
