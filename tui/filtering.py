"""The ``/`` filter: a line of terms, all of which a row must match.

- ``web`` — the name (or title) contains it, ignoring case;
- ``re:^web-0[12]$`` or ``/^web/`` — a regular expression searched in the name;
- ``host:lab`` — the host's name starts with it; several ``host:`` terms mean any of them;
- ``state:running`` — the state (``running``, ``paused``, ``shutoff``/``shut``, ``crashed``,
  ``lost``, ``active``, ``inactive``); several ``state:`` terms mean any of them;
- ``!term`` — rows that do *not* match the term.

This module imports no Textual.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from drivers.model import DomainState
from drivers.records import record
from tui.state import DomainRow

Test = Callable[[DomainRow, bool], bool]


class FilterError(ValueError):
    """A filter term cannot be understood; the message says which and why."""


def _state_test(word: str) -> Test:
    want = word.lower().replace(" ", "").replace("-", "")
    if not want:
        raise FilterError("'state:' needs a state, e.g. state:running.")
    if want == "lost":
        return lambda row, lost: lost
    if want == "active":
        return lambda row, lost: not lost and row.state.is_active
    if want == "inactive":
        return lambda row, lost: not lost and not row.state.is_active
    matching = {
        state
        for state in DomainState
        if state.words.replace(" ", "").startswith(want) or state.name.lower().startswith(want)
    }
    if not matching:
        names = "running, paused, shutoff, crashed, lost, active, inactive"
        raise FilterError(f"'state:{word}' names no state; use one of {names}.")
    return lambda row, lost: not lost and row.state in matching


def _regex_test(pattern: str) -> Test:
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as err:
        raise FilterError(f"The regular expression /{pattern}/ is invalid: {err}.") from None
    return lambda row, lost: compiled.search(row.name) is not None


def _text_test(word: str) -> Test:
    low = word.lower()
    return lambda row, lost: (
        low in row.name.lower() or (bool(row.title) and low in row.title.lower())
    )


@record
class Filter:
    """A parsed filter line; the empty filter matches everything."""

    text: str = ""
    hosts: tuple[Test, ...] = ()
    states: tuple[Test, ...] = ()
    others: tuple[Test, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.hosts or self.states or self.others)

    def matches(self, row: DomainRow, lost: bool) -> bool:
        if self.hosts and not any(t(row, lost) for t in self.hosts):
            return False
        if self.states and not any(t(row, lost) for t in self.states):
            return False
        return all(t(row, lost) for t in self.others)


def _host_test(prefix: str) -> Test:
    def test(row: DomainRow, lost: bool) -> bool:
        return row.host.lower().startswith(prefix)

    return test


def _negate(test: Test) -> Test:
    return lambda row, lost: not test(row, lost)


def parse_filter(text: str) -> Filter:
    """Parse a filter line; FilterError with a sentence when a term is wrong."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    hosts: list[Test] = []
    states: list[Test] = []
    others: list[Test] = []
    for word in words:
        negate = word.startswith("!") and len(word) > 1
        term = word[1:] if negate else word
        low = term.lower()
        bucket = others
        if low.startswith("host:"):
            name = term[5:].lower()
            if not name:
                raise FilterError("'host:' needs a host name, e.g. host:lab.")
            test: Test = _host_test(name)
            bucket = others if negate else hosts
        elif low.startswith("state:"):
            test = _state_test(term[6:])
            bucket = others if negate else states
        elif low.startswith("re:"):
            test = _regex_test(term[3:])
        elif len(term) >= 2 and term.startswith("/") and term.endswith("/"):
            test = _regex_test(term[1:-1])
        else:
            test = _text_test(term)
        bucket.append(_negate(test) if negate else test)
    return Filter(text, tuple(hosts), tuple(states), tuple(others))
