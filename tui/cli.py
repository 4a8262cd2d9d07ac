"""The ``virtdeck`` command (thin until the CLI and TUI issues land)."""

from __future__ import annotations

import argparse
import shutil
import sys

INSTALL_HINT = (
    "QEMU is not installed on this machine, so virtdeck cannot run virtual machines here.\n"
    "Install it with:  sudo apt-get install qemu-system-x86 qemu-utils\n"
    "Or try the demo, which needs no QEMU:  virtdeck --demo"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="virtdeck", description=__doc__)
    parser.add_argument("-c", "--connect", metavar="URI", help="connection URI")
    parser.add_argument("--demo", action="store_true", help="use the test:///default driver")
    args = parser.parse_args(argv)
    if not args.demo and args.connect is None and shutil.which("qemu-system-x86_64") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    print("virtdeck: the terminal UI is not built yet; see README.md.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
