"""``python -m tui [--demo] [-c URI]... [--theme NAME]``: the TUI without the virsh-like CLI."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui", description="virtdeck's terminal UI")
    parser.add_argument(
        "-c",
        "--connect",
        action="append",
        default=[],
        metavar="URI",
        help="a host to show (repeatable); default: the config's hosts",
    )
    parser.add_argument("--demo", action="store_true", help="three simulated hosts, no QEMU needed")
    parser.add_argument("--theme", help="virtdeck-dark, virtdeck-light, or a user theme")
    args = parser.parse_args(argv)
    from tui.app import run

    return run(args.connect, demo=args.demo, theme=args.theme)


if __name__ == "__main__":
    sys.exit(main())
