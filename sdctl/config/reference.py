"""The configuration reference (docs/config-reference.md), generated from the config model.

Every key comes from the pydantic model (its YAML name, type, default and limits); its
description comes from the comment above it in sdctl.example.yaml (or the model's own
description). A test regenerates the page and fails when the two disagree, or when a key
has no description.

    python -m sdctl.config.reference > docs/config-reference.md
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from sdctl.config.model import Config

HEADER = """# Configuration reference

Generated from the config model (`sdctl/config/model.py`) and the comments in
`sdctl.example.yaml` by `python -m sdctl.config.reference`; a test keeps the three in step.
Keys are camelCase; unknown keys are errors. `runtimes[]` is a list: each entry has the
keys under it.

| key | type | default | limits | what it does |
|---|---|---|---|---|
"""


def example_comments(text: str) -> dict[str, str]:
    """Key path -> the comment lines written just above the key in the example file."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        indent = len(raw) - len(raw.lstrip())
        if stripped.startswith("- "):  # "- # comment" or "- key: value": the item's keys sit two columns in
            stripped = stripped[2:].strip()
            indent += 2
            if stripped.startswith("#"):
                pending.append(stripped.lstrip("#").strip())
                stack = [(i, k) for i, k in stack if i < indent - 2]
                continue
        m = re.match(r"^([A-Za-z][A-Za-z0-9]*):", stripped)
        if not m:
            pending = []
            continue
        stack = [(i, k) for i, k in stack if i < indent]
        parent = ".".join(k for _, k in stack)
        key = m.group(1)
        path = f"{parent}.{key}" if parent else key
        path = path.replace("runtimes.", "runtimes[].", 1)
        if pending:
            comments[path] = " ".join(pending)
        pending = []
        stack.append((indent, key))
    return comments


def _type(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type(a) for a in inner) + (" or null" if len(inner) < len(args) else "")
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, str(annotation))


def _limits(field) -> str:
    parts = []
    for meta in field.metadata:
        for name, label in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "min items"),
                            ("max_length", "max length")):
            value = getattr(meta, name, None)
            if value is not None:
                parts.append(f"{label} {value}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"pattern `{pattern}`")
    inner = typing.get_args(field.annotation)
    for arg in inner:  # list item patterns
        for meta in getattr(arg, "__metadata__", ()):
            pattern = getattr(meta, "pattern", None)
            if pattern:
                parts.append(f"items match `{pattern}`")
    return ", ".join(parts).replace("|", "\\|")


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return f"`{value}`" if value != "" else '`""`'


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, object, type | None]]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        out.append((key, field, None))
        annotation = field.annotation
        if typing.get_origin(annotation) is list:
            item = typing.get_args(annotation)[0]
            item = typing.get_args(item)[0] if typing.get_origin(item) is typing.Annotated else item
            if isinstance(item, type) and issubclass(item, BaseModel):
                out += rows(item, f"{key}[].")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += rows(annotation, f"{key}.")
    return out


#: The sweep that chose the scaling defaults, written by hand from bench/waste.py's tables and
#: printed after the keys (the knobs' descriptions point to it).
SCALING_NOTES = Path(__file__).with_name("scaling_defaults.md")


def render(example_text: str) -> tuple[str, list[str]]:
    """(the Markdown page, the keys that have no description)."""
    comments = example_comments(example_text)
    lines, missing = [HEADER], []
    for key, field, _ in rows(Config):
        description = comments.get(key) or field.description or ""
        if not description:
            missing.append(key)
        lines.append(f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {_limits(field)} | "
                     f"{description.replace('|', chr(92) + '|')} |\n")
    lines.append(SCALING_NOTES.read_text())
    return "".join(lines), missing


if __name__ == "__main__":
    import sys

    from sdctl.config.loader import example_text

    page, missing = render(example_text())
    sys.stdout.write(page)
    if missing:
        sys.stderr.write(f"keys without a description: {', '.join(missing)}\n")
        raise SystemExit(1)
