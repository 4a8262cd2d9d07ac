#!/usr/bin/env bash
# Smoke test of the real terminal UI: `python -m tui --demo` under a private tmux server at
# 80x24 and 200x50; sends keys (filter, start, help, the console, quit) and checks the
# captured pane, and that a window title the guest sets never becomes the pane's title.
# Usage: tests/tui/tmux_smoke.sh [PYTHON]   (exit 0 = all good; prints what it checked)
set -euo pipefail

PY=${1:-${PYTHON:-python3}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SERVER="virtdeck-smoke-$$"
TMP=$(mktemp -d /tmp/vd-smoke-XXXXXX)
export XDG_CONFIG_HOME="$TMP/config" XDG_CACHE_HOME="$TMP/cache" TERM=xterm-256color
unset NO_COLOR

cleanup() {
    tmux -L "$SERVER" kill-server 2>/dev/null || true
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SERVER"
    rm -rf "$TMP"
}
trap cleanup EXIT

pane() { tmux -L "$SERVER" capture-pane -p -t smoke 2>/dev/null || true; }

fail() {
    echo "FAIL ($SIZE): $1" >&2
    echo "---- pane ----" >&2
    pane >&2
    exit 1
}

# wait_for REGEX [SECONDS]: until the pane shows REGEX
wait_for() {
    local deadline=$((SECONDS + ${2:-15}))
    until pane | grep -Eq -- "$1"; do
        ((SECONDS < deadline)) || fail "timed out waiting for /$1/"
        sleep 0.1
    done
}

# wait_gone REGEX [SECONDS]: until the pane no longer shows REGEX
wait_gone() {
    local deadline=$((SECONDS + ${2:-15}))
    while pane | grep -Eq -- "$1"; do
        ((SECONDS < deadline)) || fail "timed out waiting for /$1/ to go"
        sleep 0.1
    done
}

keys() { tmux -L "$SERVER" send-keys -t smoke "$@"; }

for SIZE in 80x24 200x50; do
    W=${SIZE%x*}
    H=${SIZE#*x}
    tmux -L "$SERVER" -f /dev/null new-session -d -s smoke -x "$W" -y "$H" \
        "cd '$ROOT' && exec '$PY' -m tui --demo"
    # the three demo hosts and their rows
    wait_for "demo +[0-9]+/5"
    wait_for "lab.*6/12"
    wait_for "web1 +running \(booted\)"
    echo "ok ($SIZE): the demo's hosts and rows are shown"
    # filter: only 'build' stays (a key sent while the terminal is still answering
    # Textual's start-up queries can be swallowed, so the filter box is waited for)
    sleep 0.5
    keys "/"
    wait_for "filter: words"
    keys -l "build"
    keys Enter
    wait_for "build +shut off"
    wait_gone "web1 "
    wait_for "1 of 21 domains"
    echo "ok ($SIZE): the filter keeps only build"
    # start it: the row turns running from the event
    keys s
    wait_for "build +running \(booted\)"
    echo "ok ($SIZE): s started build"
    # help lists the binding ids
    keys Escape
    wait_for "web1 "
    keys "?"
    wait_for "domain\.start"
    keys Escape
    wait_gone "domain\.start"
    echo "ok ($SIZE): ? shows the keys"
    # the console: keys go to the guest, its title stays inside, ctrl+] comes back
    keys "/"
    wait_for "filter: words"
    keys -l "web1"
    keys Enter
    wait_for "1 of 21 domains"
    keys c
    wait_for "serial console"
    wait_for "Attached"
    keys -l "title pwned"
    keys Enter
    keys -l "ping"
    keys Enter
    wait_for "VIRTDECK-PONG"
    title=$(tmux -L "$SERVER" display-message -p -t smoke '#{pane_title}')
    [[ "$title" != *pwned* ]] || fail "the guest's title reached the terminal: $title"
    keys C-]
    wait_for "web1 +running \(booted\)"
    wait_gone "serial console"
    keys Escape
    wait_for "^ 21 domains"
    echo "ok ($SIZE): c attaches, ping gets VIRTDECK-PONG, the guest's title stays inside, ctrl+] returns"
    # quit ends the program (and with it the tmux session)
    keys q
    deadline=$((SECONDS + 10))
    while tmux -L "$SERVER" has-session -t smoke 2>/dev/null; do
        ((SECONDS < deadline)) || fail "q did not quit"
        sleep 0.1
    done
    echo "ok ($SIZE): q quits"
done
echo "tmux smoke: all good"
