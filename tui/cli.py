"""The ``virtdeck`` command: ``virtdeck [-c URI] COMMAND ...`` speaks virsh; alone it opens the TUI.

This module is imported for every invocation, so it imports nothing heavy: the commands
(and through them the driver layer) load only once a command is known, and only the driver
the URI names is ever imported.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)

if TYPE_CHECKING:
    from drivers.remote.syncclient import SyncRemoteConnection

DEFAULT_URI = "qemu:///session"
DEMO_URI = "test:///default"

INSTALL_HINT = (
    "QEMU is not installed on this machine, so virtdeck cannot run virtual machines here.\n"
    "Install it with:  sudo apt-get install qemu-system-x86 qemu-utils\n"
    "Or try the demo, which needs no QEMU:  virtdeck --demo"
)

USAGE = """\

virtdeck [options]... <command> [args...]
virtdeck [options]...            (the terminal UI)

  options:
    -c | --connect=URI      hypervisor connection URI (default: $VIRTDECK_DEFAULT_URI,
                            else qemu:///session); the UI opens every -c given
    --demo                  demo hosts (test:///default and two simulated hosts)
    --theme NAME            the UI's theme (virtdeck-dark, virtdeck-light, or your own)
    -h | --help             this help
    -q | --quiet            quiet mode
    -v | --version          program version

  commands (non interactive mode):

"""


class _UsageError(Exception):
    pass


def _parse_globals(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """Split the options before the command (virsh's getopt part) from the command words.

    ``-c`` may be given more than once (the TUI opens every host); a command uses the last.
    """
    found: dict[str, str | bool] = {}
    connects: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        i += 1
        if word in ("-c", "--connect"):
            if i == len(argv):
                raise _UsageError(f"option '{word}' requires an argument")
            connects.append(argv[i])
            i += 1
        elif word.startswith("--connect="):
            connects.append(word.partition("=")[2])
        elif word.startswith("-c") and not word.startswith("--"):
            connects.append(word[2:])
        elif word == "--theme":
            if i == len(argv):
                raise _UsageError(f"option '{word}' requires an argument")
            found["theme"] = argv[i]
            i += 1
        elif word.startswith("--theme="):
            found["theme"] = word.partition("=")[2]
        elif word == "--demo":
            found["demo"] = True
        elif word in ("-q", "--quiet"):
            found["quiet"] = True
        elif word in ("-h", "--help"):
            found["help"] = True
        elif word in ("-v", "--version"):
            found["version"] = True
        else:
            raise _UsageError(f"unsupported option '{word}'. See --help.")
    if connects:
        found["connect"] = connects[-1]
        found["connects"] = "\n".join(connects)
    return found, argv[i:]


#: Commands that need no event loop: on a local daemon they run on the blocking client.
QUICK_COMMANDS = frozenset(
    {
        "list", "domstate", "dominfo", "domid", "domuuid", "domname", "dumpxml", "define",
        "undefine", "start", "shutdown", "reboot", "reset", "suspend", "resume", "destroy",
        "uri", "hostname", "version", "event",
    }
)  # fmt: skip


def _run(uri: str, quiet: bool, words: list[str]) -> int:
    from tui.virsh import Shell, run

    if words and words[0] in QUICK_COMMANDS:
        quick = _quick_connection(uri)
        if quick is not None:
            from drivers.remote.syncclient import run_to_completion

            try:
                shell = Shell(uri, quiet=quiet, conn=quick)  # type: ignore[arg-type]
                return run_to_completion(run(shell, words))
            finally:
                quick.close_now()

    import asyncio

    return asyncio.run(run(Shell(uri, quiet=quiet), words))


def _quick_connection(uri: str) -> SyncRemoteConnection | None:
    """A blocking connection to a running local daemon, or None (then asyncio does it all:
    starting the session daemon, SSH, the embedded and test drivers)."""
    if uri not in ("qemu:///session", "qemu:///system"):
        return None
    from drivers.remote.paths import local_socket

    socket = local_socket(uri)
    if socket is None or not os.path.exists(socket):
        return None
    from drivers.errors import VirtError
    from drivers.remote.syncclient import SyncRemoteConnection

    try:
        return SyncRemoteConnection(socket, uri)
    except VirtError:
        return None


def _no_command(options: dict[str, str | bool], env_uri: str | None) -> int:
    """``virtdeck`` alone: the terminal UI (after a hint if this host cannot run guests)."""
    import shutil

    connects = options.get("connects")
    uris = connects.split("\n") if isinstance(connects, str) else []
    demo = bool(options.get("demo"))
    if not uris and not demo and env_uri:
        uris = [env_uri]
    if not uris and not demo and shutil.which("qemu-system-x86_64") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    theme = options.get("theme")
    from tui.app import run

    return run(uris, demo=demo, theme=theme if isinstance(theme, str) else None)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("virtdeck")
    except metadata.PackageNotFoundError:
        return "0.1.0 (source checkout)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``virtdeck`` console script; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options, words = _parse_globals(args)
    except _UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if options.get("help"):
        from tui.virsh.commands import groups
        from tui.virsh.options import group_help

        sys.stdout.write(USAGE + "".join(group_help(group) + "\n" for group in groups()))
        return 0
    if options.get("version"):
        print(_version())
        return 0
    connect = options.get("connect")
    env_uri = os.environ.get("VIRTDECK_DEFAULT_URI") or None
    if isinstance(connect, str):
        uri = connect
    elif options.get("demo"):
        uri = DEMO_URI
    else:
        uri = env_uri or DEFAULT_URI
    if not words:
        return _no_command(options, env_uri)
    try:
        return _run(uri, bool(options.get("quiet")), words)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``virtdeck event --loop | head -1``): stop quietly, and
        # keep the interpreter's final flush from failing on the closed pipe too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
