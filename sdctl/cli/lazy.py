"""Commands that cost nothing until they run.

`sdctl --help` and every command a CI script types pay for what the CLI imports before it
does anything. Typer turns every command function into a click command up front (it reads
each signature), and its rich help pulls in rich and markdown-it; together that was most of
half a second. So the root group knows its commands by name, module and one line of help,
and imports a command's module only when that command is resolved to run (or to print its
own help); the help screens are click's plain ones, which need no rich.

    COMMANDS = {"validate": Lazy("sdctl.cli.config_cmds:commands", "Check the config file..."), ...}
    app = typer.Typer(cls=lazy_group(COMMANDS), ...)

Every command module has one style: module-level commands on a `Commands()` (top-level
commands, each looked up by name) or on a `group_app(name)` (a command group). Both take the
command's summary from the table (sdctl/cli/catalog.py), so it is written once; a command's
docstring holds only what its own `--help` adds below that line.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

from sdctl.cli.catalog import COMMANDS, Lazy


def summary(name: str) -> str:
    return COMMANDS[name].help


def group_app(name: str, **kwargs: Any) -> typer.Typer:
    """The command group `sdctl <name>` as every sdctl group is made: help on no arguments, plain
    help text, its summary from the table."""
    return typer.Typer(help=summary(name), no_args_is_help=True, rich_markup_mode=None, **kwargs)


class Commands(typer.Typer):
    """A module's top-level commands (`sdctl deploy`, not `sdctl queue ...`); each one's help
    is its summary from the table, then its docstring."""

    def __init__(self) -> None:
        super().__init__(rich_markup_mode=None)

    def command(self, name: str | None = None, **kwargs: Any):
        def decorator(f):
            detail = inspect.cleandoc(f.__doc__ or "")
            kwargs.setdefault("help", "\n\n".join(filter(None, [summary(name or f.__name__), detail])))
            return typer.Typer.command(self, name, **kwargs)(f)

        return decorator


_loaded: dict[str, click.Command] = {}


def load(name: str, spec: str) -> click.Command:
    """The real click command `name` from its module (imported now, once)."""
    if spec not in _loaded:
        module, attr = spec.split(":")
        obj = getattr(importlib.import_module(module), attr)
        _loaded[spec] = typer.main.get_group(obj)  # a group even with one command
        # Commands: top-level commands, each looked up by name; else the group `name`
        _loaded[spec].name = spec if isinstance(obj, Commands) else name
    command = _loaded[spec]
    return command if command.name == name else command.commands[name]


def lazy_group(commands: dict[str, Lazy]) -> type[TyperGroup]:
    class LazyGroup(TyperGroup):
        """Holds a stand-in per command (its name and line of help, for `--help`, completion
        and "did you mean"); resolving a command to run it imports the real one."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.commands = {name: TyperCommand(name, help=entry.help, short_help=entry.help, rich_markup_mode=None)
                             for name, entry in commands.items()}

        def resolve_command(self, ctx: click.Context, args: list[str]):
            name = args[0] if args else None
            if name in commands:
                return name, load(name, commands[name].spec), args[1:]
            return super().resolve_command(ctx, args)

    return LazyGroup
