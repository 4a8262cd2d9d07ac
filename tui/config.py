"""The user's settings: ``$XDG_CONFIG_HOME/virtdeck/config.toml`` (default ``~/.config``).

::

    theme = "virtdeck-dark"

    [[hosts]]
    name = "lab"
    uri = "qemu+ssh://admin@lab1/system"
    color = "#e5a84b"            # optional; a theme colour is picked otherwise
    mode = "protected"           # normal | protected | read-only
    autoconnect = true

    [keymap]
    "domain.start" = "s"         # binding id = key(s), comma separated

Loading gives frozen dataclasses; every problem is a :class:`ConfigError` whose message
names the file and the entry. Saving is atomic (a temporary file renamed over the old).
This module imports no Textual.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from drivers.fsutil import atomic_write
from drivers.records import field, record, replace
from drivers.xdg import virtdeck_dir

DEFAULT_URI = "qemu:///session"

__all__ = [
    "DEFAULT_URI",
    "Config",
    "ConfigError",
    "HostConfig",
    "HostMode",
    "cache_dir",
    "config_dir",
    "config_path",
    "dump_config",
    "host_name_for",
    "load_config",
    "parse_config",
    "resolve_hosts",
    "save_config",
    "themes_dir",
]


class ConfigError(Exception):
    """The config file cannot be used; the message says where and why."""


class HostMode(enum.StrEnum):
    NORMAL = "normal"
    PROTECTED = "protected"
    READ_ONLY = "read-only"


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


@record
class HostConfig:
    """One host the app connects to."""

    uri: str
    name: str
    color: str = ""
    mode: HostMode = HostMode.NORMAL
    autoconnect: bool = True
    saved: bool = True
    """False for hosts that came from ``-c`` or ``--demo``: they are never written back."""

    @property
    def writable(self) -> bool:
        return self.mode is not HostMode.READ_ONLY


@record
class Config:
    """Everything the config file says."""

    hosts: tuple[HostConfig, ...] = ()
    keymap: Mapping[str, str] = field(default_factory=dict)
    theme: str | None = None
    path: Path | None = None


def config_dir() -> Path:
    return Path(virtdeck_dir("XDG_CONFIG_HOME", ".config"))


def config_path() -> Path:
    return config_dir() / "config.toml"


def themes_dir() -> Path:
    return config_dir() / "themes"


def cache_dir() -> Path:
    return Path(virtdeck_dir("XDG_CACHE_HOME", ".cache"))


def validate_name(name: str) -> str | None:
    """Why ``name`` cannot name a host, or None when it can."""
    if not name:
        return "A host needs a name."
    if not _NAME_RE.match(name):
        return (
            f"'{name}' cannot name a host: use up to 32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return None


def host_name_for(uri: str, taken: Iterable[str] = ()) -> str:
    """A short default name for ``uri`` (its host, else its path), unique among ``taken``."""
    from drivers.errors import InvalidURI
    from drivers.uri import parse_uri

    used = set(taken)
    try:
        parsed = parse_uri(uri)
    except InvalidURI:
        base = "host"
    else:
        base = parsed.host or Path(parsed.path.rstrip("/")).stem or "host"
        if parsed.driver == "libvirt" and not parsed.host:
            # libvirt:qemu:///system next to qemu:///system: both would be 'system'
            base = f"libvirt-{base}"
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", base)[:28].strip("-.") or "host"
    if not base[0].isalnum():
        base = "h" + base
    name, n = base, 2
    while name in used:
        name, n = f"{base}-{n}", n + 1
    return name


def _where(path: Path | None, index: int | None = None, name: str | None = None) -> str:
    place = str(path) if path else "the config"
    if index is None:
        return place
    label = f"[[hosts]] entry {index + 1}" + (f" ('{name}')" if name else "")
    return f"{place}, {label}"


def _parse_host(raw: object, index: int, path: Path | None) -> HostConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f'{_where(path, index)} must be a table with at least uri = "...".')
    shown = raw.get("name") if isinstance(raw.get("name"), str) else None
    where = _where(path, index, shown)
    unknown = set(raw) - {"uri", "name", "color", "mode", "autoconnect"}
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys {', '.join(sorted(unknown))}; "
            "use uri, name, color, mode and autoconnect."
        )
    uri = raw.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f'{where} needs uri = "...", e.g. uri = "qemu:///session".')
    from drivers.errors import InvalidURI
    from drivers.uri import parse_uri

    try:
        parse_uri(uri)
    except InvalidURI as err:
        raise ConfigError(f"{where}: {err.message}") from None
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: name must be a string.")
    color = raw.get("color", "")
    if not isinstance(color, str):
        raise ConfigError(f'{where}: color must be a string such as "#e5a84b" or "red".')
    if color:
        from rich.color import Color, ColorParseError

        try:
            Color.parse(color)
        except ColorParseError:
            raise ConfigError(f"{where}: color {color!r} is not a colour.") from None
    mode = raw.get("mode", "normal")
    try:
        host_mode = HostMode(mode)
    except ValueError:
        raise ConfigError(
            f"{where}: mode {mode!r} is not one of normal, protected, read-only."
        ) from None
    autoconnect = raw.get("autoconnect", True)
    if not isinstance(autoconnect, bool):
        raise ConfigError(f"{where}: autoconnect must be true or false.")
    if name:
        problem = validate_name(name)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return HostConfig(uri.strip(), name, color, host_mode, autoconnect)


def parse_config(text: str, path: Path | None = None) -> Config:
    """Parse the text of a config file (see the module docstring)."""
    import tomllib  # here: without a config file, start-up never needs it

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{_where(path)} is not valid TOML: {err}.") from None
    unknown = set(data) - {"hosts", "keymap", "theme"}
    if unknown:
        raise ConfigError(
            f"{_where(path)} has unknown keys {', '.join(sorted(unknown))}; "
            "use theme, [[hosts]] and [keymap]."
        )
    raw_hosts = data.get("hosts", [])
    if not isinstance(raw_hosts, list):
        raise ConfigError(f"{_where(path)}: hosts must be written as [[hosts]] tables.")
    hosts: list[HostConfig] = []
    names: set[str] = set()
    uris: set[str] = set()
    for index, raw in enumerate(raw_hosts):
        host = _parse_host(raw, index, path)
        if not host.name:
            host = replace(host, name=host_name_for(host.uri, names))
        if host.name in names:
            raise ConfigError(
                f"{_where(path, index, host.name)}: another host is already called "
                f"'{host.name}'; host names must be unique."
            )
        if host.uri in uris:
            raise ConfigError(
                f"{_where(path, index, host.name)}: {host.uri} is already listed; "
                "each URI may appear once."
            )
        names.add(host.name)
        uris.add(host.uri)
        hosts.append(host)
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in keymap.items()
    ):
        raise ConfigError(
            f'{_where(path)}: [keymap] must map binding ids to keys, e.g. "domain.start" = "s".'
        )
    theme = data.get("theme")
    if theme is not None and (not isinstance(theme, str) or not theme):
        raise ConfigError(f'{_where(path)}: theme must be a theme name such as "virtdeck-dark".')
    return Config(tuple(hosts), dict(keymap), theme, path)


def load_config(path: Path | None = None) -> Config:
    """The config at ``path`` (default :func:`config_path`); an empty Config if there is none."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(path=path)
    except OSError as err:
        raise ConfigError(f"Cannot read {path}: {err.strerror}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    return parse_config(text, path)


# --- writing ----------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def dump_config(config: Config) -> str:
    """The TOML text for ``config`` (hosts that are not ``saved`` are left out)."""
    lines = ["# virtdeck settings (written by virtdeck; comments are not kept)", ""]
    if config.theme:
        lines += [f"theme = {_toml_string(config.theme)}", ""]
    for host in config.hosts:
        if not host.saved:
            continue
        lines += [
            "[[hosts]]",
            f"name = {_toml_string(host.name)}",
            f"uri = {_toml_string(host.uri)}",
        ]
        if host.color:
            lines.append(f"color = {_toml_string(host.color)}")
        lines.append(f"mode = {_toml_string(host.mode.value)}")
        lines.append(f"autoconnect = {'true' if host.autoconnect else 'false'}")
        lines.append("")
    if config.keymap:
        lines.append("[keymap]")
        for key, value in sorted(config.keymap.items()):
            lines.append(f"{_toml_key(key)} = {_toml_string(value)}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write ``config`` atomically to ``path`` (default: where it came from, else the default)."""
    target = path or config.path or config_path()
    atomic_write(target, dump_config(config))
    return target


# --- which hosts a run uses ----------------------------------------------------------------


def resolve_hosts(
    config: Config,
    uris: Iterable[str] = (),
    demo: bool = False,
    demo_hosts: Iterable[HostConfig] = (),
) -> tuple[HostConfig, ...]:
    """The hosts of this run: ``--demo`` hosts, else ``-c`` URIs, else the config's, else
    ``qemu:///session``. A ``-c`` URI the config knows keeps its name, colour and mode."""
    if demo:
        return tuple(demo_hosts)
    wanted = list(dict.fromkeys(u.strip() for u in uris if u.strip()))
    if wanted:
        known = {h.uri: h for h in config.hosts}
        hosts: list[HostConfig] = []
        for uri in wanted:
            if uri in known:
                hosts.append(replace(known[uri], autoconnect=True))
            else:
                name = host_name_for(uri, [h.name for h in hosts] + [h.name for h in config.hosts])
                hosts.append(HostConfig(uri, name, saved=False))
        return tuple(hosts)
    if config.hosts:
        return config.hosts
    return (HostConfig(DEFAULT_URI, host_name_for(DEFAULT_URI), saved=False),)
