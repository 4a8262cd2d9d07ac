"""libvirt-style connection URIs: ``driver[+transport]://[user@]host[:port]/path?query``.

``libvirt:<URI>`` names a host managed by libvirt itself (the libvirt driver): what follows
``libvirt:`` is any URI libvirt accepts, kept as it was written; its host, user, port and
path are parsed too, for showing and naming the host.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlsplit

from drivers.errors import InvalidURI
from drivers.records import field, record, replace

_KNOWN_DRIVERS = ("qemu", "test")
_KNOWN_TRANSPORTS = ("unix", "ssh")
LIBVIRT_PREFIX = "libvirt:"


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
    #: For ``libvirt:`` URIs: the libvirt URI without its query (``qemu+ssh://h/system``).
    inner: str | None = None

    @property
    def is_remote(self) -> bool:
        """True when the URI names another host or a transport."""
        return bool(self.host) or self.transport is not None

    def param(self, name: str, default: str | None = None) -> str | None:
        """One query parameter, or ``default``."""
        return self.params.get(name, default)

    def __str__(self) -> str:
        if self.inner is not None:
            return LIBVIRT_PREFIX + self.inner + _query(self.params)
        scheme = self.driver + (f"+{self.transport}" if self.transport else "")
        netloc = ""
        if self.user:
            netloc += quote(self.user, safe="") + "@"
        if self.host:
            netloc += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            netloc += f":{self.port}"
        return f"{scheme}://{netloc}{quote(self.path, safe='/')}" + _query(self.params)

    def without_params(self) -> URI:
        """The same URI with no query parameters (what to show a user)."""
        return replace(self, params={})


def _query(params: dict[str, str]) -> str:
    if not params:
        return ""
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='/')}" for k, v in params.items())


def _parse_libvirt(text: str) -> URI:
    """``libvirt:<libvirt URI>``: the libvirt URI is libvirt's to judge; only its shape is
    checked here."""
    target = text[len(LIBVIRT_PREFIX) :]
    if "://" not in target:
        raise InvalidURI(
            f"'{text}' does not name a libvirt URI after 'libvirt:'; write e.g. "
            "libvirt:qemu:///system or libvirt:qemu+ssh://root@host/system."
        )
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError as err:
        raise InvalidURI(f"'{text}' is not a valid libvirt URI: {err}.") from err
    if not parts.scheme:
        raise InvalidURI(f"'{text}' names no libvirt driver; write e.g. libvirt:qemu:///system.")
    return URI(
        driver="libvirt",
        user=unquote(parts.username) if parts.username else None,
        host=parts.hostname or None,
        port=port,
        path=unquote(parts.path),
        params=dict(parse_qsl(parts.query, keep_blank_values=True)),
        inner=target.partition("?")[0],
    )


def is_libvirt(text: str) -> bool:
    """True for a ``libvirt:`` URI (a host libvirt manages, not virtdeckd)."""
    return text.strip().lower().startswith(LIBVIRT_PREFIX)


def libvirt_target(uri: URI) -> str:
    """The URI libvirt itself is to open: the one after ``libvirt:``, without our ``ro``."""
    assert uri.inner is not None, "not a libvirt: URI"
    return uri.inner + _query({k: v for k, v in uri.params.items() if k != "ro"})


def parse_uri(text: str) -> URI:
    """Parse ``text`` into a :class:`URI` or raise :class:`InvalidURI` saying why."""
    text = text.strip()
    if not text:
        raise InvalidURI("The connection URI is empty; use e.g. qemu:///session.")
    if is_libvirt(text):
        return _parse_libvirt(text)
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
            + " and libvirt:<libvirt URI> (a host libvirt manages)."
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
    return str(replace(uri, params={**uri.params, "ro": "1"}))
