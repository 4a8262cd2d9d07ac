"""virtdeck's own themes: every colour the app draws with is defined here.

Besides Textual's base colours each theme defines the variables the widgets use:

- ``state-running``, ``state-paused``, ``state-crashed``, ``state-shutoff``,
  ``state-lost``, ``state-other``: the State column and the host counts;
- ``host-1`` … ``host-6``: the colours hosts get when the config names none;
- ``spark-cpu``, ``spark-memory``, ``spark-disk``, ``spark-net``: the table's sparklines and
  the details screen's charts;
- ``term-black`` … ``term-bright-white``: the sixteen ANSI colours of the console's
  terminal emulator (its default colours are ``foreground`` on ``background``).

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
SPARK_VARIABLES = ("spark-cpu", "spark-memory", "spark-disk", "spark-net")
_ANSI_NAMES = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
TERM_VARIABLES = tuple(f"term-{n}" for n in _ANSI_NAMES) + tuple(
    f"term-bright-{n}" for n in _ANSI_NAMES
)


def _terminal(normal: str, bright: str) -> dict[str, str]:
    """The sixteen ANSI colours from two rows of eight (black … white)."""
    colours = normal.split() + bright.split()
    return dict(zip(TERM_VARIABLES, colours, strict=True))


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
        "spark-cpu": "#E5A84B",
        "spark-memory": "#8E7CF0",
        "spark-disk": "#4FC9B0",
        "spark-net": "#4F9CF0",
        **_terminal(
            "#3A4450 #F0645A #48BF6A #E0B03A #4F9CF0 #C78BE8 #4FB6C9 #D5DCE4",
            "#6B7785 #FF8A80 #7FDB95 #F5CF6B #8BBDF7 #DDB0F2 #86D6E4 #FFFFFF",
        ),
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
        "spark-cpu": "#A8620B",
        "spark-memory": "#6A4FC2",
        "spark-disk": "#0F7F6A",
        "spark-net": "#1F62B8",
        **_terminal(
            "#1E2630 #C0332B #1E7F3C #8F6400 #1F62B8 #8A3DB0 #0F7589 #6E7781",
            "#57606A #E0473D #2E9E50 #A87800 #3A7FD6 #A65BCB #1C93A8 #8C959F",
        ),
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
        for name in (*STATE_VARIABLES, *HOST_VARIABLES, *SPARK_VARIABLES, *TERM_VARIABLES)
        if name not in theme.variables
    }
    if not missing:
        return theme
    return dataclasses.replace(theme, variables={**missing, **theme.variables})
