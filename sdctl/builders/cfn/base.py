"""Small helpers for writing templates as dicts."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import yaml

LOG_RETENTION_DAYS = 90  # every log group sdctl creates


def ref(name: str) -> dict:
    return {"Ref": name}


def getatt(resource: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [resource, attribute]}


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


def tags(values: dict[str, object]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


def template(description: str) -> dict:
    return {"AWSTemplateFormatVersion": "2010-09-09", "Description": description,
            "Parameters": {}, "Conditions": {}, "Resources": {}, "Outputs": {}}


def output(value, description: str | None = None) -> dict:
    out = {"Value": value}
    if description:
        out["Description"] = description
    return out


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def trust(service, actions="sts:AssumeRole") -> dict:
    """A role's trust policy for an AWS service principal."""
    return policy({"Effect": "Allow", "Principal": {"Service": service}, "Action": actions})


def allow(actions, resources, **extra) -> dict:
    return {"Effect": "Allow", "Action": _list(actions), "Resource": _list(resources), **extra}


def _list(v):
    return v if isinstance(v, list) else [v]


def static_dir() -> Path:
    import sdctl

    here = Path(sdctl.__file__).parent
    for candidate in (here / "resources" / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the static templates folder is missing from this installation")


@cache
def _load_static(name: str) -> dict:
    return yaml.safe_load((static_dir() / name).read_text())


def load_static(name: str) -> dict:
    """A fresh copy of a static template or document from `templates/`."""
    return copy.deepcopy(_load_static(name))


def prune(tpl: dict) -> dict:
    """Drop empty top-level sections (CloudFormation rejects some of them)."""
    return {k: v for k, v in tpl.items() if v != {} or k == "Resources"}


#: Data-holding resources outlive the stack that made them (and a replacement of it).
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
