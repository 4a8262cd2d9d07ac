"""``virtdeckd``: the host daemon (thin until the daemon issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("virtdeckd: the daemon is not built yet; see README.md.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
