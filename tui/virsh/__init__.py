"""The virsh-like commands behind ``virtdeck [-c URI] COMMAND ...``.

:func:`run` executes one command line on a :class:`Shell` the way virsh runs one command:
parse it (a mistake is reported and nothing runs), run it, report a failure as
``error: ...`` on stderr, then print the blank line virsh ends every command with (unless
``--quiet``). The exit status is 0 on success and 1 on any failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from tui.virsh.shell import Shell

__all__ = ["Shell", "run"]


async def run(shell: Shell, words: Sequence[str]) -> int:
    """Run the command ``words`` (its name first) on ``shell``; returns the exit status."""
    from drivers.errors import VirtError
    from tui.virsh.commands import find
    from tui.virsh.options import Args, UsageError, parse

    name, *rest = words
    command = find(name)
    if command is None:
        shell.error(f"unknown command: '{name}'")
        return 1
    try:
        args = parse(command, rest)
    except UsageError as err:
        shell.error(str(err))
        return 1
    if args.help:
        command = find("help")
        assert command is not None
        args = Args(command, {"command": name})
    try:
        ok = await command.handler(shell, args)
    except VirtError as err:
        shell.error(err.message)
        ok = False
    except OSError as err:
        shell.error(_describe(err))
        ok = False
    finally:
        try:
            await shell.close()
        except (VirtError, OSError) as err:
            shell.error(err.message if isinstance(err, VirtError) else _describe(err))
            ok = False
    shell.extra("\n")
    return 0 if ok else 1


def _describe(err: OSError) -> str:
    where = f" ({err.filename})" if err.filename else ""
    return f"{err.strerror or err}{where}."
