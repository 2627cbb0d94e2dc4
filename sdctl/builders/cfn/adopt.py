"""Kept data back into a new stack: CloudFormation resource import, planned as data.

The edge stack keeps its output bucket, task table, queues and their key (``DeletionPolicy:
Retain``) when it is deleted by ``destroy --keep-data``, and they keep their fixed names. A
plain create of the stack then fails on "already exists". CloudFormation's documented way to
put existing resources under a stack is an ``IMPORT`` change set (CloudFormation User Guide,
"Import AWS resources into a CloudFormation stack"; "Create a stack from existing
resources"), whose rules this module follows:

- the template of an import holds the imported resources and nothing else that would be
  created, each with a ``DeletionPolicy`` (here, every retained resource has ``Retain``);
- each resource is named by its type's identifier: ``BucketName``, ``TableName``, ``QueueUrl``,
  ``KeyId`` (the ``ResourceIdentifier`` of ``ResourcesToImport``);
- references stay inside the imported set (a queue's dead-letter queue, the table's key).

After the import the stack exists, and the usual update change set adds the rest.
"""

from __future__ import annotations

import copy
import re

#: Types sdctl retains and can adopt: the identifier CloudFormation names each by, and the
#: property that holds its name (none for a KMS key, which has no name; it is found through the
#: table it encrypts).
IDENTIFIERS = {
    "AWS::S3::Bucket": ("BucketName", "BucketName"),
    "AWS::DynamoDB::Table": ("TableName", "TableName"),
    "AWS::SQS::Queue": ("QueueUrl", "QueueName"),
    "AWS::KMS::Key": ("KeyId", None),
}


def retained(template: dict) -> dict[str, dict]:
    """The resources a stack keeps when deleted and sdctl can adopt again, by logical id."""
    return {lid: res for lid, res in template.get("Resources", {}).items()
            if res.get("DeletionPolicy") == "Retain" and res["Type"] in IDENTIFIERS and "Condition" not in res}


def physical_name(value, *, account: str, region: str, partition: str = "aws") -> str:
    """A name property as AWS will see it: a string, or a ``Fn::Sub`` of pseudo parameters."""
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        pseudo = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": partition}
        text = value["Fn::Sub"]
        unknown = [m for m in re.findall(r"\$\{([^}]+)\}", text) if m not in pseudo]
        if unknown:
            raise ValueError(f"cannot resolve {', '.join(unknown)} in {text!r}")
        return re.sub(r"\$\{([^}]+)\}", lambda m: pseudo[m.group(1)], text)
    if not isinstance(value, str):
        raise ValueError(f"not a name: {value!r}")
    return value


def refs(obj) -> set[str]:
    """The logical ids (and parameters) an expression refers to through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(obj, dict):
        if isinstance(obj.get("Ref"), str):
            found.add(obj["Ref"])
        if isinstance(obj.get("Fn::GetAtt"), list):
            found.add(obj["Fn::GetAtt"][0])
        if isinstance(obj.get("Fn::Sub"), str):
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", obj["Fn::Sub"])}
        for v in obj.values():
            found |= refs(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= refs(v)
    return found


def plan(template: dict, found: dict[str, str]) -> tuple[dict, list[dict]]:
    """The import template and ``ResourcesToImport`` for the retained resources ``found``
    (logical id -> identifier value). Raises ValueError naming a found resource that refers to
    one of the stack's resources that was not found (it cannot be imported alone)."""
    resources = template.get("Resources", {})
    chosen = {lid: copy.deepcopy(resources[lid]) for lid in found}
    for lid, res in chosen.items():
        missing = sorted(r for r in refs(res) if r in resources and r not in chosen)
        if missing:
            raise ValueError(f"{lid} exists but {', '.join(missing)}, which it refers to, does not")
    params = {k: v for k, v in template.get("Parameters", {}).items()}
    body = {"AWSTemplateFormatVersion": template.get("AWSTemplateFormatVersion", "2010-09-09"),
            "Description": template.get("Description", "sdctl"), "Parameters": params, "Resources": chosen}
    if template.get("Conditions"):
        body["Conditions"] = copy.deepcopy(template["Conditions"])
    to_import = [{"ResourceType": res["Type"], "LogicalResourceId": lid,
                  "ResourceIdentifier": {IDENTIFIERS[res["Type"]][0]: found[lid]}}
                 for lid, res in chosen.items()]
    return body, to_import
