"""Commands that cost nothing until they run.

`sdctl --help` and every command a CI script types pay for what the CLI imports before it
does anything. Typer turns every command function into a click command up front (it reads
each signature), and its rich help pulls in rich and markdown-it; together that was most of
half a second. So the root group knows its commands by name, module and one line of help,
and imports a command's module only when that command is resolved to run (or to print its
own help); the help screens are click's plain ones, which need no rich.

    COMMANDS = {"validate": Lazy("sdctl.cli.config_cmds:register", "Check the config file..."), ...}
    app = typer.Typer(cls=lazy_group(COMMANDS), ...)

A spec names either a `register(app)` function that adds top-level commands to a Typer app,
or a Typer app that is a command group. tests/test_cli.py keeps each help line equal to the
command's own first line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup


def group_app(help: str, **kwargs: Any) -> typer.Typer:
    """A command group as every sdctl group is made: help on no arguments, plain help text."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **kwargs)


@dataclass(frozen=True)
class Lazy:
    spec: str  # "module:attr"
    help: str  # the one line `sdctl --help` shows


_loaded: dict[str, click.Command] = {}


def load(name: str, spec: str) -> click.Command:
    """The real click command `name` from its module (imported now, once)."""
    if spec not in _loaded:
        module, attr = spec.split(":")
        obj = getattr(importlib.import_module(module), attr)
        if isinstance(obj, typer.Typer):  # a command group
            _loaded[spec] = typer.main.get_group(obj)  # a group even with one command
            _loaded[spec].name = name
        else:  # register(app): top-level commands, each looked up by name
            holder = typer.Typer(rich_markup_mode=None)
            obj(holder)
            _loaded[spec] = typer.main.get_group(holder)
            _loaded[spec].name = spec
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
