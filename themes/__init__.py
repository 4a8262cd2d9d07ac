"""virtdeck's Textual themes: the builtin ones and user themes from TOML files.

A user theme is ``~/.config/virtdeck/themes/NAME.toml``::

    name = "solarized"          # optional; the file name otherwise
    primary = "#268bd2"         # required
    dark = true
    background = "#002b36"      # any other Theme field: secondary, accent, foreground,
                                # surface, panel, success, warning, error, boost
    [variables]
    state-running = "#859900"   # virtdeck's variables (see themes.builtin); missing
                                # ones are taken from the builtin theme of the same kind

This package imports only ``textual.theme`` (and the standard library).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from themes.builtin import (
    BUILTIN_THEMES,
    DEFAULT_THEME,
    HOST_VARIABLES,
    SPARK_VARIABLES,
    STATE_VARIABLES,
    TERM_VARIABLES,
    VIRTDECK_DARK,
    VIRTDECK_LIGHT,
    with_virtdeck_variables,
)

__all__ = [
    "BUILTIN_THEMES",
    "DEFAULT_THEME",
    "HOST_VARIABLES",
    "SPARK_VARIABLES",
    "STATE_VARIABLES",
    "TERM_VARIABLES",
    "VIRTDECK_DARK",
    "VIRTDECK_LIGHT",
    "ThemeFailure",
    "load_user_themes",
    "theme_from_toml",
    "with_virtdeck_variables",
]

_COLOUR_FIELDS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)


@dataclass(frozen=True)
class ThemeFailure:
    """A user theme file that could not be loaded, and why (a sentence)."""

    path: Path
    message: str


def _colour(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a colour string such as \"#268bd2\".")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"'{key}' = {value!r} is not a colour.") from None
    return value


def theme_from_toml(path: Path) -> Theme:
    """Read one theme file; ValueError with a sentence naming the problem."""
    import tomllib  # here: without user themes, start-up never needs it

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read it: {err.strerror}.") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"it is not valid TOML: {err}.") from err
    unknown = set(data) - {"name", "dark", "variables", *_COLOUR_FIELDS}
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(unknown))}.")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ValueError("'name' must be a non-empty string.")
    if "primary" not in data:
        raise ValueError("it sets no 'primary' colour.")
    colours = {key: _colour(key, data[key]) for key in _COLOUR_FIELDS if key in data}
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ValueError("'dark' must be true or false.")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ValueError('[variables] must be a table of name = "colour".')
    checked = {str(k): _colour(f"variables.{k}", v) for k, v in variables.items()}
    theme = Theme(
        name=name.strip(),
        primary=colours["primary"],
        secondary=colours.get("secondary"),
        warning=colours.get("warning"),
        error=colours.get("error"),
        success=colours.get("success"),
        accent=colours.get("accent"),
        foreground=colours.get("foreground"),
        background=colours.get("background"),
        surface=colours.get("surface"),
        panel=colours.get("panel"),
        boost=colours.get("boost"),
        dark=dark,
        variables=checked,
    )
    return with_virtdeck_variables(theme)


def load_user_themes(directory: Path) -> tuple[list[Theme], list[ThemeFailure]]:
    """Every ``*.toml`` theme in ``directory``: (loaded, failed). A missing directory is empty."""
    loaded: list[Theme] = []
    failed: list[ThemeFailure] = []
    if not directory.is_dir():
        return loaded, failed
    for path in sorted(directory.glob("*.toml")):
        try:
            theme = theme_from_toml(path)
        except ValueError as err:
            failed.append(ThemeFailure(path, f"The theme file {path} was skipped: {err}"))
            continue
        if theme.name in BUILTIN_THEMES:
            failed.append(
                ThemeFailure(
                    path,
                    f"The theme file {path} was skipped: '{theme.name}' is a builtin theme; "
                    "give it another name.",
                )
            )
            continue
        loaded.append(theme)
    return loaded, failed
