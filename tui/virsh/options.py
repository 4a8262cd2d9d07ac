"""virsh's command grammar: option tables, parsing a command's words, and help built from them.

The grammar is virsh's own, not argparse's, so that command lines and error messages carry
over: ``--opt value``, ``--opt=value``, positional values filling the positional options in
order, ``--`` ending options, ``--help`` anywhere, and virsh's wording for every mistake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from drivers.errors import InvalidArgument
from drivers.records import record

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from typing import Literal

    from tui.virsh.shell import Shell


#: drivers.domxml.tree.MAX_XML_BYTES, written out so that a one-shot command loads no lxml:
#: the most of a file ``define`` (or ``migrate --xml``) reads.
MAX_DEFINE_BYTES = 4 << 20


def is_uint(text: str) -> bool:
    """virsh's unsigned number: white space, an optional ``+``, then at most 20 ASCII digits
    (an unsigned long; int() would refuse 4300 and more). Written out rather than a regular
    expression: compiling one costs a one-shot command ~0.2 ms."""
    digits = text.lstrip()
    if digits.startswith("+"):
        digits = digits[1:]
    return 0 < len(digits) <= 20 and digits.isascii() and digits.isdigit()


class UsageError(Exception):
    """The words do not fit the command's options; reported before anything runs."""


@record
class Opt:
    """One option of a command; ``positional`` ones may also be given without ``--name``."""

    name: str
    kind: Literal["bool", "string", "number", "argv"]
    help: str
    positional: bool = False
    required: bool = False


Handler = Callable[["Shell", "Args"], Awaitable[bool]]


@record
class Command:
    """A verb: what ``help`` says about it, its options and the coroutine that runs it."""

    name: str
    help: str
    desc: str
    opts: tuple[Opt, ...]
    handler: Handler


@record
class Group:
    name: str
    keyword: str
    commands: tuple[Command, ...]


class Args:
    """The parsed options of one command line (filled in while the words are read)."""

    def __init__(self, command: Command, values: dict[str, str | bool] | None = None) -> None:
        self.command = command
        self.values: dict[str, str | bool] = {} if values is None else values
        self.help = False

    def flag(self, name: str) -> bool:
        return self.values.get(name) is True

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or isinstance(value, bool):
            return None
        if value == "":
            raise InvalidArgument(f"Failed to get option '{name}': Option argument is empty")
        return value

    def words(self, name: str) -> list[str]:
        """An ``argv`` option's words (virsh's ``{keycode}...``), in order."""
        value = self.values.get(name)
        if not isinstance(value, str) or not value:
            return []
        return value.split("\0")

    def required(self, name: str) -> str:
        value = self.text(name)
        assert value is not None, f"{name} is a required option"
        return value

    def exclusive(self, first: str, second: str) -> None:
        if first in self.values and second in self.values:
            raise InvalidArgument(f"Options --{first} and --{second} are mutually exclusive")


def parse(command: Command, words: Sequence[str]) -> Args:
    """Fill ``command``'s options from ``words`` the way virsh's parser does."""
    args = Args(command)
    options = {opt.name: opt for opt in command.opts}
    positionals = [opt for opt in command.opts if opt.positional]
    only_positional = False
    pending = list(words)
    pending.reverse()
    while pending:
        word = pending.pop()
        if only_positional or not word.startswith("--"):
            slot = next(
                (o for o in positionals if o.name not in args.values or o.kind == "argv"), None
            )
            if slot is not None and slot.kind == "argv" and slot.name in args.values:
                args.values[slot.name] = f"{args.values[slot.name]}\0{word}"
                continue
            if slot is None:
                if command.name == "help":
                    continue  # virsh's help ignores what it does not need
                raise UsageError(f"unexpected data '{word}'")
            args.values[slot.name] = word
            continue
        if word == "--":
            only_positional = True
            continue
        name, equals, inline = word[2:].partition("=")
        if name == "help":
            args.help = True
            continue
        opt = options.get(name)
        if opt is None:
            if command.name == "help":
                continue
            raise UsageError(f"command '{command.name}' doesn't support option --{name}")
        if name in args.values:
            raise UsageError(f"option --{name} already seen")
        if opt.kind == "bool":
            if equals:
                raise UsageError(f"invalid '=' after option --{name}")
            args.values[name] = True
        elif equals:
            args.values[name] = inline
        elif pending:
            args.values[name] = pending.pop()
        else:
            raise UsageError(f"expected syntax: --{name} <{_placeholder(opt)}>")
    if args.help:
        return args
    for opt in command.opts:
        if opt.required and opt.name not in args.values:
            wanted = f"<{opt.name}>" if opt.positional else f"--{opt.name}"
            raise UsageError(f"command '{command.name}' requires {wanted} option")
    return args


def _placeholder(opt: Opt) -> str:
    return "number" if opt.kind == "number" else "string"


# --- help -------------------------------------------------------------------------------


def command_help(command: Command) -> str:
    """``help COMMAND``: NAME, SYNOPSIS, DESCRIPTION and OPTIONS, laid out as virsh does."""
    synopsis = ""
    for opt in command.opts:
        if opt.kind == "bool":
            synopsis += f" [--{opt.name}]"
            continue
        if opt.kind == "argv":
            synopsis += f" {{{opt.name}}}..." if opt.required else f" [{{{opt.name}}}...]"
            continue
        shown = f"<{opt.name}>" if opt.positional else f"--{opt.name} <{_placeholder(opt)}>"
        synopsis += f" {shown}" if opt.required else f" [{shown}]"
    text = (
        f"  NAME\n    {command.name} - {command.help}\n\n  SYNOPSIS\n    {command.name}{synopsis}\n"
    )
    if command.desc:
        text += f"\n  DESCRIPTION\n    {command.desc}\n"
    if command.opts:
        text += "\n  OPTIONS\n"
        for opt in command.opts:
            if opt.kind == "bool":
                shown = f"--{opt.name}"
            elif opt.positional:
                shown = f"[--{opt.name}] <{_placeholder(opt)}>"
            else:
                shown = f"--{opt.name} <{_placeholder(opt)}>"
            text += f"    {shown:<15}  {opt.help}\n"
    return text


def group_help(group: Group) -> str:
    text = f" {group.name} (help keyword '{group.keyword}'):\n"
    for command in group.commands:
        text += f"    {command.name:<30} {command.help}\n"
    return text


def all_help(groups: Sequence[Group]) -> str:
    return "Grouped commands:\n\n" + "".join(group_help(group) + "\n" for group in groups)
