"""virtdeck's own themes: every colour the app draws with is defined here.

Besides Textual's base colours each theme defines the variables the widgets use:

- ``state-running``, ``state-paused``, ``state-crashed``, ``state-shutoff``,
  ``state-lost``, ``state-other``: the State column and the host counts;
- ``host-1`` … ``host-6``: the colours hosts get when the config names none.

TCSS refers to them as ``$state-running`` and so on; rendering code reads them from
``App.theme_variables``.
"""

from __future__ import annotations

import dataclasses

from textual.theme import Theme

#: Variables every virtdeck theme must define (user themes get these defaults).
STATE_VARIABLES = (
    "state-running",
    "state-paused",
    "state-crashed",
    "state-shutoff",
    "state-lost",
    "state-other",
)
HOST_VARIABLES = tuple(f"host-{n}" for n in range(1, 7))

VIRTDECK_DARK = Theme(
    name="virtdeck-dark",
    primary="#4F9CF0",
    secondary="#8E7CF0",
    accent="#E5A84B",
    foreground="#D5DCE4",
    background="#0E1217",
    surface="#161C23",
    panel="#212A35",
    success="#48BF6A",
    warning="#E0B03A",
    error="#F0645A",
    dark=True,
    variables={
        "state-running": "#48BF6A",
        "state-paused": "#E0B03A",
        "state-crashed": "#F0645A",
        "state-shutoff": "#8A96A3",
        "state-lost": "#5C6670",
        "state-other": "#4FB6C9",
        "host-1": "#4F9CF0",
        "host-2": "#C78BE8",
        "host-3": "#4FC9B0",
        "host-4": "#E5A84B",
        "host-5": "#E86F9C",
        "host-6": "#A3C95B",
        "footer-key-foreground": "#4F9CF0",
        "block-cursor-text-style": "bold",
    },
)

VIRTDECK_LIGHT = Theme(
    name="virtdeck-light",
    primary="#1F62B8",
    secondary="#6A4FC2",
    accent="#A8620B",
    foreground="#1E2630",
    background="#F7F8FA",
    surface="#FFFFFF",
    panel="#E4E8EE",
    success="#1E7F3C",
    warning="#8F6400",
    error="#C0332B",
    dark=False,
    variables={
        "state-running": "#1E7F3C",
        "state-paused": "#8F6400",
        "state-crashed": "#C0332B",
        "state-shutoff": "#5E6873",
        "state-lost": "#9AA3AD",
        "state-other": "#0F7589",
        "host-1": "#1F62B8",
        "host-2": "#8A3DB0",
        "host-3": "#0F7F6A",
        "host-4": "#A8620B",
        "host-5": "#B8326A",
        "host-6": "#557A12",
        "footer-key-foreground": "#1F62B8",
        "block-cursor-text-style": "bold",
    },
)

BUILTIN_THEMES: dict[str, Theme] = {t.name: t for t in (VIRTDECK_DARK, VIRTDECK_LIGHT)}
DEFAULT_THEME = VIRTDECK_DARK.name


def with_virtdeck_variables(theme: Theme) -> Theme:
    """``theme`` with any missing virtdeck variable filled from the builtin of its kind."""
    base = VIRTDECK_DARK if theme.dark else VIRTDECK_LIGHT
    missing = {
        name: base.variables[name]
        for name in (*STATE_VARIABLES, *HOST_VARIABLES)
        if name not in theme.variables
    }
    if not missing:
        return theme
    return dataclasses.replace(theme, variables={**missing, **theme.variables})
