"""CloudFormation: change sets, execution with a live event stream, outputs, deletion."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import SdctlError

TEMPLATE_BODY_LIMIT = 51200
NO_CHANGES = ("didn't contain changes", "No updates are to be performed", "submitted information didn't contain")
CANCELLED = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")
BUSY = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
        "ROLLBACK_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "IMPORT_IN_PROGRESS")
GOOD_END = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
BAD_END = ("CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
           "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "IMPORT_ROLLBACK_COMPLETE")


class DeployFailed(SdctlError):
    def __init__(self, stack: str, status: str, reason: str | None, resource: str | None):
        where = f" at {resource}" if resource else ""
        super().__init__(f"stack {stack} ended {status}{where}: {reason or 'no reason given'}",
                         hint=f"see all events with: aws cloudformation describe-stack-events --stack-name {stack}")
        self.stack, self.status, self.reason, self.resource = stack, status, reason, resource


@dataclass
class Change:
    action: str
    logical_id: str
    resource_type: str
    replacement: str

    def to_dict(self) -> dict:
        return {"action": self.action, "logical_id": self.logical_id, "type": self.resource_type,
                "replacement": self.replacement}


@dataclass
class ChangeSet:
    stack: str
    kind: str  # CREATE | UPDATE
    changes: list[Change] = field(default_factory=list)
    arn: str | None = None

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass
class StackEvent:
    timestamp: datetime
    logical_id: str
    resource_type: str
    status: str
    reason: str | None

    @property
    def failed(self) -> bool:
        return self.status.endswith("FAILED") and not (self.reason or "").startswith(CANCELLED)

    def event(self, stack: str) -> Event:
        level = "error" if self.failed else ("ok" if self.status.endswith("COMPLETE") else "progress")
        reason = f"  {self.reason}" if self.reason and (self.failed or "FAILED" in self.status) else ""
        return Event(f"stack:{stack}", f"{self.logical_id}  {self.status}{reason}", level, self.status,
                     {"logical_id": self.logical_id, "type": self.resource_type, "reason": self.reason},
                     at=self.timestamp.timestamp())


def changes_from_template(stack: str, template: dict) -> ChangeSet:
    """What creating a stack that does not exist yet will do: add every resource."""
    return ChangeSet(stack=stack, kind="CREATE", changes=[
        Change("Add", lid, res["Type"], "-") for lid, res in template.get("Resources", {}).items()])


class Deployer:
    def __init__(self, cfn, *, upload: Callable[[str, bytes], str] | None = None, poll: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.cfn = cfn
        self.upload = upload
        self.poll = poll
        self.sleep = sleep

    # -- reading ------------------------------------------------------------------------------
    def status(self, stack: str) -> str | None:
        data = self.describe(stack)
        return data["StackStatus"] if data else None

    def describe(self, stack: str) -> dict | None:
        try:
            return self.cfn.describe_stacks(StackName=stack)["Stacks"][0]
        except self.cfn.exceptions.ClientError as e:
            if "does not exist" in str(e):
                return None
            raise

    def outputs(self, stack: str) -> dict[str, str]:
        data = self.describe(stack) or {}
        return {o["OutputKey"]: o["OutputValue"] for o in data.get("Outputs", [])}

    # -- change sets ----------------------------------------------------------------------------------
    def create_change_set(self, stack: str, template: dict, parameters: dict[str, str],
                          capabilities: tuple[str, ...] = (), tags: dict[str, str] | None = None) -> ChangeSet:
        status = self.status(stack)
        if status in BUSY:
            raise SdctlError(f"stack {stack} is busy ({status})", hint="wait for it to finish, then try again")
        if status == "ROLLBACK_COMPLETE":
            raise SdctlError(f"stack {stack} failed to create earlier and is ROLLBACK_COMPLETE",
                             hint="it must be deleted before it can be created again (deploy offers this)")
        kind = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
        kwargs = self._change_set_args(stack, "sdctl", kind, template, parameters, capabilities, tags)
        try:
            arn = self.cfn.create_change_set(**kwargs)["Id"]
        except self.cfn.exceptions.ClientError as e:
            # AWS reports "nothing to change" as a FAILED change set (handled below); an API
            # path that raises it at once means the same.
            if any(s in str(e) for s in NO_CHANGES):
                return ChangeSet(stack=stack, kind=kind)
            raise
        cs = self._settled(stack, arn)
        if cs["Status"] == "FAILED":
            reason = cs.get("StatusReason", "")
            if any(s in reason for s in NO_CHANGES):
                self._discard(stack, arn, kind)
                return ChangeSet(stack=stack, kind=kind)
            self._discard(stack, arn, kind)
            raise SdctlError(f"CloudFormation rejected the change set for {stack}: {reason}")
        changes = []
        for c in cs.get("Changes", []):
            rc = c.get("ResourceChange", {})
            changes.append(Change(rc.get("Action", "?"), rc.get("LogicalResourceId", "?"),
                                  rc.get("ResourceType", "?"), rc.get("Replacement") or "-"))
        return ChangeSet(stack=stack, kind=kind, changes=changes, arn=arn)

    def import_resources(self, stack: str, template: dict, parameters: dict[str, str], to_import: list[dict],
                         capabilities: tuple[str, ...] = (), tags: dict[str, str] | None = None,
                         report: Report = ignore) -> None:
        """Put existing resources under ``stack`` (a new one, or one that exists) with an IMPORT
        change set whose template holds only them (see builders/cfn/adopt.py)."""
        arn = self.cfn.create_change_set(ResourcesToImport=to_import, **self._change_set_args(
            stack, "sdctl-import", "IMPORT", template, parameters, capabilities, tags))["Id"]
        cs = self._settled(stack, arn)
        if cs["Status"] == "FAILED":
            self._discard(stack, arn, "CREATE")
            raise SdctlError(f"CloudFormation refused to import the kept resources into {stack}: "
                             f"{cs.get('StatusReason', '')}")
        started = datetime.now(UTC)
        self.cfn.execute_change_set(ChangeSetName=arn, StackName=stack)
        self.wait(stack, started, report)

    def _change_set_args(self, stack: str, prefix: str, kind: str, template: dict, parameters: dict[str, str],
                         capabilities: tuple[str, ...], tags: dict[str, str] | None) -> dict:
        return dict(StackName=stack, ChangeSetName=f"{prefix}-{uuid.uuid4().hex[:12]}", ChangeSetType=kind,
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                    Capabilities=list(capabilities), Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
                    **self._template_arg(stack, template))

    def _settled(self, stack: str, arn: str) -> dict:
        """The change set once CloudFormation has made it (or failed to)."""
        while True:
            cs = self.cfn.describe_change_set(ChangeSetName=arn, StackName=stack)
            if cs["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return cs
            self.sleep(self.poll)

    def discard(self, cs: ChangeSet) -> None:
        if cs.arn:
            self._discard(cs.stack, cs.arn, cs.kind)

    def _discard(self, stack: str, arn: str, kind: str) -> None:
        self.cfn.delete_change_set(ChangeSetName=arn, StackName=stack)
        if kind == "CREATE" and self.status(stack) == "REVIEW_IN_PROGRESS":
            self.cfn.delete_stack(StackName=stack)  # the empty placeholder a CREATE change set leaves

    def _template_arg(self, stack: str, template: dict) -> dict:
        body = json.dumps(template, separators=(",", ":"))
        if len(body) <= TEMPLATE_BODY_LIMIT or self.upload is None:
            return {"TemplateBody": body}
        return {"TemplateURL": self.upload(f"templates/{stack}.json", body.encode())}

    # -- execution ---------------------------------------------------------------------------------------
    def execute(self, cs: ChangeSet, report: Report = ignore) -> dict[str, str]:
        started = datetime.now(UTC)
        # A rollback deletes what this operation created, retained resources included, so a
        # failed first create leaves no named bucket, table or queue to block the retry
        # (ExecuteChangeSet, RetainExceptOnCreate: "newly created resources are deleted when the
        # operation rolls back. This includes newly created resources marked with a deletion
        # policy of Retain").
        self.cfn.execute_change_set(ChangeSetName=cs.arn, StackName=cs.stack, RetainExceptOnCreate=True)
        self.wait(cs.stack, started, report)
        return self.outputs(cs.stack)

    def delete(self, stack: str, report: Report = ignore) -> bool:
        status = self.status(stack)
        if status is None:
            return False
        started = datetime.now(UTC)
        self.cfn.delete_stack(StackName=stack)
        self.wait(stack, started, report, deleting=True)
        return True

    def wait(self, stack: str, since: datetime, report: Report, deleting: bool = False) -> str:
        seen: set[str] = set()
        history: list[StackEvent] = []
        while True:
            for e in self._new_events(stack, since, seen):
                history.append(e)
                report(e.event(stack))
            status = self.status(stack)
            if status is None or status == "DELETE_COMPLETE":
                if deleting:
                    return "DELETE_COMPLETE"
                raise DeployFailed(stack, "DELETED", "the stack disappeared", None)
            if status in GOOD_END and not deleting:
                return status
            if status in BAD_END:
                first = next((e for e in history if e.failed), None)
                raise DeployFailed(stack, status, first.reason if first else None,
                                   f"{first.logical_id} ({first.resource_type})" if first else None)
            self.sleep(self.poll)

    def _new_events(self, stack: str, since: datetime, seen: set[str]) -> list[StackEvent]:
        try:
            pages = self.cfn.get_paginator("describe_stack_events").paginate(StackName=stack)
            raw = []
            for page in pages:
                batch = page.get("StackEvents", [])
                raw.extend(batch)
                if batch and batch[-1]["Timestamp"] < since:
                    break
        except self.cfn.exceptions.ClientError:
            return []
        fresh = []
        for ev in reversed(raw):
            ts = ev["Timestamp"]
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            key = ev.get("EventId") or f"{ev['LogicalResourceId']}{ev['ResourceStatus']}{ts}"
            if ts < since.replace(microsecond=0) or key in seen:
                continue
            seen.add(key)
            fresh.append(StackEvent(ts, ev["LogicalResourceId"], ev.get("ResourceType", ""), ev["ResourceStatus"],
                               ev.get("ResourceStatusReason")))
        return fresh
