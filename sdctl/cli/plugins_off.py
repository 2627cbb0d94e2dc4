"""pydantic without its plugin loader's import cost, while plugins are off.

The CLI turns pydantic's plugins off (PYDANTIC_DISABLE_PLUGINS=__all__, a documented setting:
the CLI uses none). pydantic then finds no plugins without looking, but the module that would
look, `pydantic.plugin._loader`, still imports `importlib.metadata` (email, zipfile, socket
and more: 14 ms here, 25-30 ms on a busy machine) when the first model is built, which is
every command that reads the config.

`install()` puts a stand-in for that module in `sys.modules`. Its `get_plugins()` answers
what pydantic's does while the setting says off (no plugins) and defers to the real one
otherwise; any other name asked of it loads the real module in its place and answers from
that, so a pydantic that uses more of the module still gets all of it.
`tests/test_cli.py` checks both against the installed pydantic.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

NAME = "pydantic.plugin._loader"
#: The values pydantic's own get_plugins() reads as "no plugins at all".
OFF = ("__all__", "1", "true")


def _real() -> types.ModuleType:
    """pydantic's own module, loaded in the stand-in's place if it is not loaded yet."""
    if sys.modules.get(NAME) is STAND_IN:
        del sys.modules[NAME]
    return importlib.import_module(NAME)


class _Loader(types.ModuleType):
    def __getattr__(self, attr: str):
        if attr.startswith("__"):  # the import system asks a module for __path__, __spec__ and such
            raise AttributeError(attr)
        return getattr(_real(), attr)


def _get_plugins():
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") in OFF:
        return ()
    return _real().get_plugins()


STAND_IN = _Loader(NAME, __doc__)
STAND_IN.get_plugins = _get_plugins


def install() -> None:
    """Stand in for pydantic's plugin loader unless it is loaded already."""
    sys.modules.setdefault(NAME, STAND_IN)
