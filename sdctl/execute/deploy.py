"""Plan, deploy, destroy and inspect the AWS stacks. Decisions come from the builders;
this module only sequences the executors and reports `Event`s (sdctl/contracts/events.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sdctl.builders.cfn.stacks import StackSpec, stacks
from sdctl.builders.names import artifacts_bucket, names
from sdctl.config.model import Config
from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import SdctlError, UsageError
from sdctl.execute.aws import adopt, artifacts
from sdctl.execute.aws.cloudformation import ChangeSet, Deployer, changes_from_template
from sdctl.execute.aws.session import Aws
from sdctl.execute.site import site


@dataclass
class Context:
    cfg: Config
    aws: Aws
    deployer: Deployer
    specs: list[StackSpec]
    code_bucket: str
    code_key: str
    code: bytes
    site_values: dict = field(default_factory=dict)

    def stack_name(self, key: str) -> str | None:
        return next((s.name for s in self.specs if s.key == key), None)

    def outputs(self, key: str) -> dict[str, str]:
        """The outputs of stack `key` (network, edge or cluster) as deployed now."""
        return self.deployer.outputs(self.stack_name(key))


def context(cfg: Config, aws: Aws, *, poll: float = 2.0) -> Context:
    code = artifacts.lambda_zip()
    bucket = artifacts_bucket(cfg.stack_name, aws.account, aws.region)
    key = artifacts.lambda_key(code)
    s3 = aws.client("s3")

    def upload(k: str, data: bytes) -> str:
        s3.put_object(Bucket=bucket, Key=k, Body=data)
        return f"https://{bucket}.s3.{aws.region}.amazonaws.com/{k}"

    deployer = Deployer(aws.client("cloudformation"), upload=upload, poll=poll)

    return Context(cfg, aws, deployer, stacks(cfg), bucket, key, code)


def select(ctx: Context, only: str | None) -> list[StackSpec]:
    if only is None:
        return ctx.specs
    chosen = [s for s in ctx.specs if s.key == only]
    if not chosen:
        raise UsageError(f"no stack {only!r}", hint=f"stacks: {', '.join(s.key for s in ctx.specs)}")
    return chosen


def _upstream_outputs(ctx: Context, spec: StackSpec, done: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    outs = dict(done)
    for s in ctx.specs:
        if s is spec:
            break
        if s.key not in outs:
            if ctx.deployer.status(s.name) is None:
                raise SdctlError(f"stack {s.name} is not deployed; {spec.name} needs its outputs",
                                 hint=f"deploy it first: sdctl deploy --only {s.key}")
            outs[s.key] = ctx.deployer.outputs(s.name)
    return outs


def _parameters(ctx: Context, spec: StackSpec, outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    try:
        return spec.parameters(outputs, site(ctx, spec))
    except KeyError as e:
        raise SdctlError(f"{spec.name} needs the output {e.args[0]} of an earlier stack, which lacks it",
                         hint="deploy the earlier stacks again (sdctl deploy) and check `sdctl status`") from None


def plan(ctx: Context, only: str | None = None) -> list[ChangeSet]:
    """What deploy would change, stack by stack. Creates change sets and deletes them unexecuted."""
    results: list[ChangeSet] = []
    for spec in select(ctx, only):
        if ctx.deployer.status(spec.name) is None:
            results.append(changes_from_template(spec.name, spec.template))
            continue
        params = _parameters(ctx, spec, _upstream_outputs(ctx, spec, {}))
        cs = ctx.deployer.create_change_set(spec.name, spec.template, params, spec.capabilities, spec.tags)
        ctx.deployer.discard(cs)
        results.append(cs)
    return results


def deploy(ctx: Context, *, only: str | None = None, confirm: Callable[[ChangeSet], bool],
           confirm_recreate: Callable[[str], bool], report: Report = ignore) -> dict[str, dict[str, str]]:
    """Deploy stacks in order. Returns every deployed stack's outputs by key."""
    if ctx.cfg.cluster.existing and any(s.key == "cluster" for s in select(ctx, only)):
        from sdctl.execute.aws import preflight

        preflight.check(ctx.aws, ctx.cfg, cluster_stack=ctx.stack_name("cluster"))  # before anything changes
    s3 = ctx.aws.client("s3")
    artifacts.ensure_bucket(s3, ctx.code_bucket, ctx.aws.region)
    artifacts.upload_once(s3, ctx.code_bucket, ctx.code_key, ctx.code)
    outputs: dict[str, dict[str, str]] = {}
    for spec in select(ctx, only):
        if spec.key == "cluster" and not ctx.cfg.cluster.existing:
            for note in check_addon_pins(ctx.aws.client("eks"), ctx.cfg.cluster.version):
                report(Event(f"stack:{spec.name}", note, "warning"))
        status = ctx.deployer.status(spec.name)
        if status == "ROLLBACK_COMPLETE":
            if not confirm_recreate(spec.name):
                raise SdctlError(f"stack {spec.name} is ROLLBACK_COMPLETE and was not deleted",
                                 hint="delete it (or answer yes) and deploy again")
            ctx.deployer.delete(spec.name, report)
        params = _parameters(ctx, spec, _upstream_outputs(ctx, spec, outputs))
        if ctx.deployer.status(spec.name) is None:
            adopt.adopt_kept(ctx, spec, params, report)
        cs = ctx.deployer.create_change_set(spec.name, spec.template, params, spec.capabilities, spec.tags)
        if cs.empty:
            report(Event(f"stack:{spec.name}", "no changes", "ok", "unchanged"))
        elif not confirm(cs):
            ctx.deployer.discard(cs)
            raise SdctlError(f"deploy of {spec.name} cancelled; nothing was changed")
        else:
            ctx.deployer.execute(cs, report)
            report(Event(f"stack:{spec.name}", "deployed", "ok", "deployed"))
        outputs[spec.key] = ctx.deployer.outputs(spec.name)
    return outputs


def destroy(ctx: Context, *, keep_data: bool, report: Report = ignore) -> dict:
    """Delete stacks in reverse order; then the retained data unless keep_data. Never the model bucket."""
    done: dict = {"stacks": {}, "buckets": {}, "queues": [], "tables": [], "keys": []}
    done["leftovers"] = sweep_karpenter(ctx, report)
    edge = ctx.outputs("edge") if ctx.deployer.status(ctx.stack_name("edge")) else {}
    for spec in reversed(ctx.specs):
        deleted = ctx.deployer.delete(spec.name, report)
        done["stacks"][spec.name] = "deleted" if deleted else "absent"
        report(Event(f"stack:{spec.name}", done["stacks"][spec.name], "ok", done["stacks"][spec.name]))
    if keep_data:
        return done  # the task store, the queues and the key that encrypts them all stay
    n = names(ctx.cfg, account=ctx.aws.account, region=ctx.aws.region)
    s3 = ctx.aws.client("s3")
    for bucket in (n.output_bucket, ctx.code_bucket):
        if ctx.cfg.model_bucket.name and bucket == ctx.cfg.model_bucket.name:
            continue  # never touch the model bucket
        count = artifacts.empty_bucket(s3, bucket)
        try:
            s3.delete_bucket(Bucket=bucket)
            done["buckets"][bucket] = {"deleted": True, "objects": count}
        except s3.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            done["buckets"][bucket] = {"deleted": False, "reason": code}
        what = "deleted" if done["buckets"][bucket]["deleted"] else "absent"
        report(Event(f"s3:{bucket}", what, "ok", what))
    sqs = ctx.aws.client("sqs")
    kept = [q for rn in n.runtimes for _, queue, dlq in rn.lanes() for q in (queue, dlq)]
    for q in [*kept, n.webhooks_queue, n.webhooks_dead_letter_queue]:
        try:
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=q)["QueueUrl"])
            done["queues"].append(q)
            report(Event(f"queue:{q}", "deleted", "ok", "deleted"))
        except sqs.exceptions.ClientError:
            pass
    dynamodb = ctx.aws.client("dynamodb")
    key_id = edge.get("TopicKeyId")
    try:
        # After an earlier `destroy --keep-data` the stack is gone; the table still names its key.
        sse = dynamodb.describe_table(TableName=n.tasks_table)["Table"].get("SSEDescription") or {}
        key_id = key_id or sse.get("KMSMasterKeyArn")
        dynamodb.delete_table(TableName=n.tasks_table)
        done["tables"].append(n.tasks_table)
        report(Event(f"table:{n.tasks_table}", "deleted", "ok", "deleted"))
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    if key_id:  # retained by the stack; nothing it encrypted is left
        kms = ctx.aws.client("kms")
        try:
            meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]  # takes an id or an ARN
            if meta.get("KeyState") != "PendingDeletion":
                kms.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
            done["keys"].append(key_id)
            report(Event(f"kms:{key_id}", "deletion scheduled (7 days)", "ok", "scheduled"))
        except kms.exceptions.ClientError as e:
            report(Event(f"kms:{key_id}", f"kept: {e.response.get('Error', {}).get('Code')}", "warning", "kept"))
    return done


def check_addon_pins(eks, kubernetes: str) -> list[str]:
    """Each pinned add-on version (sdctl/versions.py) must be one EKS offers for this Kubernetes
    version; a wrong pin would fail the cluster stack only after the cluster (~15 min) is up.
    Returns notes for pins it could not check; raises for a pin EKS does not offer."""
    import botocore.exceptions as bex

    from sdctl import versions

    notes, wrong = [], []
    for addon, pinned in versions.ADDONS.items():
        try:
            pages = eks.get_paginator("describe_addon_versions").paginate(addonName=addon,
                                                                          kubernetesVersion=kubernetes)
            offered = [v["addonVersion"] for page in pages for a in page.get("addons", [])
                       for v in a.get("addonVersions", [])]
        except (bex.ClientError, bex.BotoCoreError) as e:
            notes.append(f"add-on {addon}: could not check pin {pinned} ({e})")
            continue
        if pinned not in offered:
            wrong.append(f"{addon} {pinned} (offered: {', '.join(offered[:3]) or 'none'})")
    if wrong:
        raise SdctlError(f"EKS does not offer these add-on versions for Kubernetes {kubernetes}: {'; '.join(wrong)}",
                         hint="update sdctl (or the pins in sdctl/versions.py), or set cluster.version to one "
                              "they support; nothing was changed")
    return notes


def sweep_karpenter(ctx: Context, report: Report = ignore) -> dict:
    """Terminate what Karpenter launched for this stack and clean its launch templates and
    instance profiles, so no GPU keeps billing and the cluster stack can delete its node role.
    Runs whether or not the cluster answered (Helm uninstall lets Karpenter drain, but a
    cluster that is gone cannot). Raises, keeping the stacks, if anything cannot be removed."""
    from sdctl.builders.names import karpenter_node_role
    from sdctl.execute.aws import leftovers

    cluster = ctx.cfg.cluster_name
    ec2, iam = ctx.aws.client("ec2"), ctx.aws.client("iam")
    role = karpenter_node_role(cluster)
    found = leftovers.find(ec2, iam, cluster=cluster, stack=ctx.cfg.stack_name, node_role=role)
    if not found.empty:
        try:
            leftovers.remove(ec2, iam, found, node_role=role, report=report)
        except Exception as e:
            if isinstance(e, SdctlError):  # already says what to do
                raise
            raise SdctlError(f"could not remove what Karpenter launched ({found.to_dict()}): {e}",
                             hint="the stacks were kept; terminate those instances (EC2 console, tag "
                                  f"kubernetes.io/cluster/{cluster}=owned) and run `sdctl destroy` again") from None
    return found.to_dict()


def status(ctx: Context) -> list[dict]:
    rows = []
    for spec in ctx.specs:
        data = ctx.deployer.describe(spec.name)
        rows.append({"key": spec.key, "stack": spec.name,
                     "status": data["StackStatus"] if data else "NOT_DEPLOYED",
                     "updated": str(data.get("LastUpdatedTime") or data.get("CreationTime")) if data else None,
                     "outputs": {o["OutputKey"]: o["OutputValue"] for o in (data or {}).get("Outputs", [])}})
    return rows


def api_key_value(aws: Aws, key_id: str) -> str:
    return aws.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"]
