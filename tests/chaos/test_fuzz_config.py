"""Fuzzing the config file (tui/config.py): random TOML documents built from its own keys
and nasty values, plain garbage, and bytes that are not UTF-8.

Whatever the file holds, loading it gives a Config or a ConfigError whose message names the
file; never another exception. A config that loads writes back (dump_config) to a text
that loads as the same config.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.config import ConfigError, dump_config, load_config, parse_config

EXAMPLES = 800
SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
WHERE = Path("/home/u/.config/virtdeck/config.toml")

NASTY = [
    "", " ", "qemu:///session", "qemu:///system", "test:///default",
    "qemu+ssh://admin@lab1/system", "qemu+ssh://[::1]:22/session?keyfile=/k",
    "qemu+ssh://a b/system", "nope", "://", "qemu:///embed?root=relative",
    "lab", "lab-1", "a" * 40, "-x", "é", "\x1b[31m", "\n", "#e5a84b", "red", "#zzz",
    "color(300)", "rgb(1,2,3)", "normal", "protected", "read-only", "READ-ONLY",
    "virtdeck-dark", "s", "ctrl+s", "domain.start", "9" * 5000,
]  # fmt: skip
KEYS = ["theme", "hosts", "keymap", "uri", "name", "color", "mode", "autoconnect", "x"]

scalars = (
    st.sampled_from(NASTY)
    | st.text(max_size=10)
    | st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=True)
    | st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 1, 1))
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=3,
)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return '"' + "".join(
            c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value
        ) + '"'  # fmt: skip
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


SENSIBLE = {
    "uri": st.sampled_from(NASTY[2:7]),
    "name": st.sampled_from(["lab", "lab-1", "h2", "a.b_c", "x" * 32, "é", "-x", ""]),
    "color": st.sampled_from(["#e5a84b", "red", "rgb(1,2,3)", "#zzz", ""]),
    "mode": st.sampled_from(["normal", "protected", "read-only", "READ-ONLY"]),
    "autoconnect": st.booleans(),
}


def sensible_or(draw: st.DrawFn, good: st.SearchStrategy[object]) -> object:
    """Mostly a value of the right kind; one time in five anything at all."""
    return draw(good if draw(st.integers(0, 4)) else values)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines: list[str] = []
    if draw(st.booleans()):
        theme = st.sampled_from(["virtdeck-dark", "mine", ""])
        lines.append(f"theme = {toml_value(sensible_or(draw, theme))}")
    for _ in range(draw(st.integers(0, 3))):
        lines.append("[[hosts]]")
        keys = draw(st.lists(st.sampled_from(sorted(SENSIBLE)), unique=True))
        if draw(st.integers(0, 5)):
            keys = ["uri", *[k for k in keys if k != "uri"]]
        if not draw(st.integers(0, 9)):
            keys.append(draw(st.sampled_from(KEYS)))
        for key in keys:
            value = sensible_or(draw, SENSIBLE.get(key, values))
            lines.append(f"{toml_value(key)} = {toml_value(value)}")
    if draw(st.booleans()):
        lines.append("[keymap]")
        ids = st.sampled_from(["domain.start", "quit", "app.help", ""]) | st.text(max_size=8)
        keys_ = st.sampled_from(["s", "ctrl+s", "a,b", " ", ""])
        for _ in range(draw(st.integers(0, 3))):
            lines.append(f"{toml_value(draw(ids))} = {toml_value(sensible_or(draw, keys_))}")
    if draw(st.integers(0, 9)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=20)))
    return "\n".join(lines) + "\n"


SEEN = {"loaded": 0, "refused": 0, "hosts": 0}


def check(text: str) -> None:
    try:
        config = parse_config(text, WHERE)
    except ConfigError as err:
        assert str(WHERE) in str(err) and str(err).strip(), err
        SEEN["refused"] += 1
        return
    SEEN["loaded"] += 1
    SEEN["hosts"] += len(config.hosts)
    again = parse_config(dump_config(config), WHERE)
    assert again == config, (config, again)


@settings(SETTINGS, max_examples=EXAMPLES)
@given(documents())
def test_config_documents(text: str) -> None:
    check(text)


@settings(SETTINGS, max_examples=300)
@given(st.text(max_size=300))
def test_config_garbage(text: str) -> None:
    check(text)


@settings(SETTINGS, max_examples=100)
@given(st.binary(max_size=200))
def test_config_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    try:
        load_config(path)
    except ConfigError as err:
        assert str(path) in str(err)


def test_what_the_fuzz_saw() -> None:
    print("config fuzz:", SEEN)
    assert SEEN["loaded"] and SEEN["refused"]
