"""Least privilege on the local stack: each process signs with its own credentials, whose
policy is the very document the CloudFormation templates grant that component on AWS
(sdctl/builders/cfn/policies.py), and the emulator enforces it (sdctl/execute/local/emulator/server.py).

    operator      the CLI's operate commands: a user's own credentials, so everything
    api-handler   the gateway's Lambda handler: policies.api_handler
    agent-<rt>    each runtime's queue agents: policies.runtime_workload
    keda          what KEDA's operator would read: policies.keda_operator
    webhooks      the webhook deliverer: policies.webhook_deliverer

Provisioning runs before enforcement starts (moto's reset-auth with 0: every later request
is authenticated and authorized). A missing permission then fails a local test instead of a
production task.
"""

from __future__ import annotations

from sdctl.builders.cfn import policies
from sdctl.contracts.tasks import STATUS_INDEX

OPERATOR = "operator"
HANDLER = "api-handler"
KEDA = "keda"
WEBHOOKS = "webhooks"


def agent(runtime: str) -> str:
    return f"agent-{runtime}"


def lanes(rt: dict) -> dict:
    """A provisioned runtime's queues by priority lane (only the normal one before lanes)."""
    return rt.get("lanes") or {"normal": {"queue_arn": rt["queue_arn"]}}


def documents(resources: dict, *, region: str, account: str, model_bucket: str | None = None) -> dict[str, dict]:
    """Principal -> policy document, from what provisioning created. Pure."""
    table = f"arn:aws:dynamodb:{region}:{account}:table/{resources['tasks_table']}"
    key = f"arn:aws:kms:{region}:{account}:key/local-stack-has-no-key"
    bucket = f"arn:aws:s3:::{resources['bucket']}"
    hooks = resources["webhooks"]
    docs = {
        OPERATOR: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        HANDLER: policies.api_handler(
            requests_topic=resources["requests_topic_arn"], tasks_table=table, key=key,
            status_index=f"{table}/index/{STATUS_INDEX}",
            log_group=f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/local-api",
            webhooks_queue=hooks["queue_arn"], api_keys=f"arn:aws:apigateway:{region}::/apikeys/*"),
        WEBHOOKS: policies.webhook_deliverer(
            queue=hooks["queue_arn"], dead_letter_queue=hooks["dead_letter_queue_arn"], secret=hooks["secret_arn"],
            key=key, log_group=f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/local-webhooks"),
        KEDA: policies.keda_operator([lane["queue_arn"] for rt in resources["runtimes"].values()
                                      for lane in lanes(rt).values()]),
    }
    for name, rt in resources["runtimes"].items():
        docs[agent(name)] = policies.runtime_workload(
            queue=[lane["queue_arn"] for lane in lanes(rt).values()], output_bucket=bucket, output_objects=f"{bucket}/*",
            results_topic=resources["results_topic_arn"], tasks_table=table, key=key,
            webhooks_queue=hooks["queue_arn"], model_objects=f"arn:aws:s3:::{model_bucket}/*" if model_bucket else None)
    return docs


def create(iam, docs: dict[str, dict], stack: str) -> dict[str, dict[str, str]]:
    """One IAM user per principal with its inline policy and an access key; returns the
    environment each process signs with."""
    import json

    creds = {}
    for principal, doc in docs.items():
        user = f"{stack}-{principal}"[:64]
        try:
            iam.create_user(UserName=user)
        except iam.exceptions.EntityAlreadyExistsException:  # kept from an earlier stack: new keys
            for old in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=user, AccessKeyId=old["AccessKeyId"])
        iam.put_user_policy(UserName=user, PolicyName=principal, PolicyDocument=json.dumps(doc))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        creds[principal] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    return creds


def enforce(aws_url: str) -> None:
    """From now on the emulator authenticates and authorizes every request."""
    import httpx

    httpx.post(f"{aws_url}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
