"""What a release upgrade would change: rendered objects against installed ones. Pure."""

from __future__ import annotations

import difflib

import yaml

VOLATILE = ("status", "managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


def _key(obj: dict) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "?")


def _clean(obj: dict) -> dict:
    obj = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in VOLATILE}
    return {**obj, "metadata": meta}


def diff_manifests(rendered: list[dict], installed: list[dict]) -> list[dict]:
    """One row per object that would be added, changed or removed, with a unified diff."""
    new = {_key(o): _clean(o) for o in rendered}
    old = {_key(o): _clean(o) for o in installed}
    rows = []
    for key in sorted(new.keys() | old.keys()):
        kind, namespace, name = key
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        action = "add" if a is None else "remove" if b is None else "change"
        before = yaml.safe_dump(a, sort_keys=True).splitlines() if a else []
        after = yaml.safe_dump(b, sort_keys=True).splitlines() if b else []
        diff = "\n".join(difflib.unified_diff(before, after, "installed", "rendered", lineterm="", n=2))
        rows.append({"action": action, "kind": kind, "namespace": namespace, "name": name, "diff": diff})
    return rows
