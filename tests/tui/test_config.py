"""Config files, host resolution, user themes, the filter language and the event → state map."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.model import (
    DomainState,
    EventType,
    LifecycleEvent,
    ResumedDetail,
    ShutoffReason,
    StartedDetail,
    StoppedDetail,
    SuspendedDetail,
)
from themes import BUILTIN_THEMES, STATE_VARIABLES, load_user_themes
from tui.config import (
    Config,
    ConfigError,
    HostConfig,
    HostMode,
    config_path,
    dump_config,
    host_name_for,
    load_config,
    parse_config,
    resolve_hosts,
    save_config,
)
from tui.demo import demo_hosts
from tui.filtering import FilterError, parse_filter
from tui.state import DomainRow, state_after, uptime_text


def test_config_round_trip(tmp_path: Path) -> None:
    text = """
theme = "virtdeck-light"

[[hosts]]
name = "lab"
uri = "qemu+ssh://admin@lab1/system"
color = "#e5a84b"
mode = "protected"

[[hosts]]
uri = "qemu:///session"
mode = "read-only"
autoconnect = false

[keymap]
"domain.start" = "ctrl+s"
"""
    config = parse_config(text, tmp_path / "c.toml")
    assert [h.name for h in config.hosts] == ["lab", "session"]
    assert config.hosts[0].mode is HostMode.PROTECTED
    assert config.hosts[1].mode is HostMode.READ_ONLY and not config.hosts[1].autoconnect
    assert config.keymap == {"domain.start": "ctrl+s"}
    path = save_config(config, tmp_path / "out" / "config.toml")
    again = load_config(path)
    assert again.hosts == config.hosts and again.keymap == config.keymap
    assert again.theme == "virtdeck-light"


def test_xdg_config_home_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "virtdeck" / "config.toml"
    assert load_config() == Config(path=config_path())


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[hosts]]\nname = "a"\n', "[[hosts]] entry 1 ('a') needs uri"),
        ('[[hosts]]\nuri = "foo://x"\n', "entry 1: Unknown driver 'foo'"),
        ('[[hosts]]\nuri = "test:///default"\nmode = "prod"\n', "mode 'prod' is not one of"),
        ('[[hosts]]\nuri = "test:///default"\ncolour = "red"\n', "unknown keys colour"),
        ('[[hosts]]\nuri = "test:///default"\ncolor = "nocolour"\n', "is not a colour"),
        (
            '[[hosts]]\nname="x"\nuri = "test:///default"\n[[hosts]]\nname="x"\nuri="qemu:///session"\n',
            "entry 2 ('x'): another host is already called 'x'",
        ),
        ('[[hosts]]\nuri = "test:///default"\nname = "bad name"\n', "cannot name a host"),
        ("hosts = 3\n", "hosts must be written as [[hosts]]"),
        ("theme = [1]\n", "theme must be a theme name"),
        ("[keymap]\nx = 1\n", "[keymap] must map binding ids"),
        ("nonsense = \n", "is not valid TOML"),
    ],
)
def test_config_errors_name_the_entry(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "config.toml")
    assert words in str(info.value)
    assert str(tmp_path / "config.toml") in str(info.value)


@given(st.text(min_size=0, max_size=40))
def test_dumped_strings_read_back(value: str) -> None:
    value = "x" + value
    config = Config(hosts=(HostConfig("test:///default", "h"),), keymap={"k": value}, theme=value)
    again = parse_config(dump_config(config))
    assert again.keymap == {"k": value} and again.theme == value


def test_resolve_hosts() -> None:
    config = parse_config(
        '[[hosts]]\nname = "lab"\nuri = "test:///default"\nmode = "protected"\n'
        "autoconnect = false\n"
    )
    assert resolve_hosts(config) == config.hosts
    chosen = resolve_hosts(config, ["test:///default", "qemu:///session"])
    assert [(h.name, h.mode, h.saved) for h in chosen] == [
        ("lab", HostMode.PROTECTED, True),
        ("session", HostMode.NORMAL, False),
    ]
    assert chosen[0].autoconnect
    assert [h.uri for h in resolve_hosts(Config())] == ["qemu:///session"]
    assert host_name_for("qemu+ssh://root@web.example.com:2222/system") == "web.example.com"
    assert host_name_for("test:///default", ["default"]) == "default-2"


def test_demo_hosts(tmp_path: Path) -> None:
    hosts = demo_hosts(tmp_path)
    assert [h.name for h in hosts] == ["demo", "lab", "edge"]
    assert [h.mode for h in hosts] == [HostMode.NORMAL, HostMode.PROTECTED, HostMode.READ_ONLY]
    assert all(not h.saved for h in hosts)
    assert (tmp_path / "lab.xml").read_text().count("<domain ") == 12


def test_user_themes(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text(
        'name = "mine"\nprimary = "#123456"\n[variables]\nstate-running = "#00ff00"\n'
    )
    (tmp_path / "bad.toml").write_text('primary = "notacolour"\n')
    (tmp_path / "clash.toml").write_text('name = "virtdeck-dark"\nprimary = "#123456"\n')
    (tmp_path / "junk.toml").write_text("primary = \n")
    loaded, failed = load_user_themes(tmp_path)
    assert [t.name for t in loaded] == ["mine"]
    assert loaded[0].variables["state-running"] == "#00ff00"
    assert all(v in loaded[0].variables for v in STATE_VARIABLES)
    assert sorted(f.path.name for f in failed) == ["bad.toml", "clash.toml", "junk.toml"]
    assert all("was skipped" in f.message for f in failed)
    assert load_user_themes(tmp_path / "none") == ([], [])


def test_builtin_themes_define_the_state_colours() -> None:
    assert {"virtdeck-dark", "virtdeck-light"} <= set(BUILTIN_THEMES)
    for theme in BUILTIN_THEMES.values():
        assert all(v in theme.variables for v in STATE_VARIABLES)


def row(name: str, host: str = "h", state: DomainState = DomainState.RUNNING) -> DomainRow:
    return DomainRow(host, name, name, state, state.reason(1))


def test_filter_language() -> None:
    rows = [row("web-01"), row("web-02", "lab"), row("db", "lab", DomainState.SHUTOFF)]

    def match(text: str, lost: bool = False) -> list[str]:
        f = parse_filter(text)
        return [r.name for r in rows if f.matches(r, lost)]

    assert match("") == ["web-01", "web-02", "db"]
    assert match("WEB") == ["web-01", "web-02"]
    assert match("host:lab") == ["web-02", "db"]
    assert match("host:lab host:h state:shutoff") == ["db"]
    assert match("state:running state:shut") == ["web-01", "web-02", "db"]
    assert match("!state:running") == ["db"]
    assert match("re:-0[2]$") == ["web-02"]
    assert match("/^d/") == ["db"]
    assert match("state:lost") == []
    assert match("state:lost", lost=True) == ["web-01", "web-02", "db"]
    assert match("state:running", lost=True) == []
    for bad in ("re:(", "state:nonsense", "host:"):
        with pytest.raises(FilterError):
            parse_filter(bad)


def event(kind: EventType, detail: object) -> LifecycleEvent:
    return LifecycleEvent(domain="d", uuid="u", type=kind, detail=detail)  # type: ignore[arg-type]


def test_events_map_to_states() -> None:
    running = DomainState.RUNNING
    assert state_after(event(EventType.STARTED, StartedDetail.BOOTED), DomainState.SHUTOFF) == (
        running,
        running.reason(1),
    )
    paused = state_after(event(EventType.SUSPENDED, SuspendedDetail.PAUSED), running)
    assert paused is not None and paused[0] is DomainState.PAUSED and paused[1].words == "user"
    resumed = state_after(event(EventType.RESUMED, ResumedDetail.UNPAUSED), DomainState.PAUSED)
    assert resumed is not None and resumed[1].words == "unpaused"
    assert state_after(event(EventType.STOPPED, StoppedDetail.DESTROYED), running) == (
        DomainState.SHUTOFF,
        ShutoffReason.DESTROYED,
    )
    assert state_after(event(EventType.DEFINED, 0), running) is None


def test_uptime_text() -> None:
    r = row("x")
    r.started, r.started_exact = 1000.0, True
    assert uptime_text(r, 1030) == "<1m"
    assert uptime_text(r, 1000 + 3 * 3600 + 65) == "3h01m"
    assert uptime_text(r, 1000 + 2 * 86400 + 4000) == "2d01h"
    r.started_exact = False
    assert uptime_text(r, 1030) == ""
    assert uptime_text(r, 1000 + 300) == "≥5m"
    r.state = DomainState.SHUTOFF
    assert uptime_text(r, 1300) == ""
