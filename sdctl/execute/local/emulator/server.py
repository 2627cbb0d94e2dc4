"""The local stack's AWS: moto's server, closer to AWS where its IAM checks fall short.

    python -m sdctl.execute.local.emulator -H 127.0.0.1 -p PORT

The local stack enforces IAM (see sdctl/execute/local/iam.py): after provisioning, every process
signs its calls with credentials whose policy is the very document the CloudFormation
templates grant that component. moto authorizes such calls with a basic evaluator that
differs from AWS in ways that would deny what AWS allows, so this module corrects them before
serving, and changes nothing else:

- moto authorizes SNS, DynamoDB and Secrets Manager calls against the resource "*", so a
  statement naming a topic, table or secret ARN (as sdctl's least-privilege policies do)
  never matches. AWS authorizes Publish against the topic, item calls against the table, an
  index Query against the index, and GetSecretValue against the secret: the ARN is computed
  here.
- moto asks for `sqs:ChangeMessageVisibilityBatch` (and `DeleteMessageBatch`,
  `SendMessageBatch`, `sns:PublishBatch`), which are not IAM actions: AWS authorizes each
  batch call with the single call's permission (SQS Developer Guide, "Amazon SQS API
  permissions"; SNS API Reference, PublishBatch).

- API Gateway's IAM actions are its HTTP methods on resource paths (`apigateway:GET` on
  `arn:aws:apigateway:REGION::/apikeys/ID`; API Gateway Developer Guide, "Control access for
  managing an API"), where moto asks for `apigateway:GetApiKey` on "*": the action and the
  resource are computed here the way AWS names them.
- moto computes API Gateway's SigV4 signature from another canonical request than botocore
  signs and so refuses every signed API Gateway call (SignatureDoesNotMatch). For
  `apigateway` alone the signature comparison is skipped; the access key must still be
  known and the action allowed by its policy.

- moto reads a signature only from the Authorization header, so a presigned URL (its
  signature in the query string) answered 500: sdctl/execute/local/emulator/presigned.py checks it as S3
  does.

Conditions and resource policies stay unevaluated (moto's docs/iam.rst): the rule tests in
tests/test_aws_rules.py cover what those decide on AWS.
"""

from __future__ import annotations

import json
import sys

from sdctl.execute.local.emulator.fast import faster_dispatch, faster_sqs  # noqa: F401 - the emulator's, re-exported

#: Batch calls and the IAM action AWS authorizes them with.
BATCH_ACTIONS = {"sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
                 "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
                 "sqs:SendMessageBatch": "sqs:SendMessage",
                 "sns:PublishBatch": "sns:Publish"}


def aws_like_authorization() -> None:
    from moto.apigateway.responses import APIGatewayResponse
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.access_control import IAMRequest
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sns.responses import SNSResponse
    from moto.utilities.utils import get_partition

    if getattr(IAMRequest, "_sdctl_patched", False):
        return
    from sdctl.execute.local.emulator import presigned

    presigned.apply()  # before the wrappers below capture the base class's signature check

    def topic_resource(self) -> str:
        return self._get_param("TopicArn") or self._get_param("TargetArn") or "*"

    def table_resource(self) -> str:
        body = self.body if isinstance(self.body, dict) else {}
        table = body.get("TableName")
        batch = body.get("RequestItems")
        if not table and isinstance(batch, dict) and len(batch) == 1:
            table = next(iter(batch))  # BatchGetItem/BatchWriteItem: AWS authorizes each table named
        if not table:
            return "*"
        arn = f"arn:{get_partition(self.region)}:dynamodb:{self.region}:{self.current_account}:table/{table}"
        # A Query or Scan of an index is authorized against the index (DynamoDB Developer Guide,
        # "Using IAM policy conditions for fine-grained access control": index ARNs).
        return f"{arn}/index/{body['IndexName']}" if body.get("IndexName") else arn

    def secret_resource(self) -> str:
        secret_id = (json.loads(self.body) if self.body else {}).get("SecretId") or ""
        if secret_id.startswith("arn:"):
            return secret_id
        try:  # a name: AWS authorizes against the secret's full ARN (with its random suffix)
            return self.backend.describe_secret(secret_id).arn if secret_id else "*"
        except Exception:  # an unknown secret: the call itself answers ResourceNotFound
            return "*"

    def apigateway_resource(self) -> str:
        return f"arn:{get_partition(self.region)}:apigateway:{self.region}::{self.path}"

    APIGatewayResponse._determine_resource = apigateway_resource
    SNSResponse._determine_resource = topic_resource
    SecretsManagerResponse._determine_resource = secret_resource
    DynamoHandler._determine_resource = table_resource

    original_init = IAMRequest.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._action = BATCH_ACTIONS.get(self._action, self._action)
        if self._service == "apigateway":
            self._action = f"apigateway:{self._method}"

    IAMRequest.__init__ = init
    original_check = IAMRequest.check_signature

    def check_signature(self) -> None:
        if self._service != "apigateway":
            original_check(self)

    IAMRequest.check_signature = check_signature
    IAMRequest._sdctl_patched = True


def main(argv: list[str] | None = None) -> None:
    """moto's server, with the corrections above and, given `--data DIR`, its memory kept in
    DIR (sdctl/execute/local/emulator/persist.py): read back before serving, snapshotted as it changes,
    and once more on SIGTERM."""
    import argparse
    import signal
    from pathlib import Path

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(prog="python -m sdctl.execute.local.emulator")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--data", help="keep the emulator's data in this folder (none: in memory only)")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    import os

    os.environ.setdefault("MOTO_PORT", str(args.port))
    aws_like_authorization()
    from sdctl.execute.local.emulator import rules

    rules.apply()
    faster_sqs()
    faster_dispatch()
    app = DomainDispatcherApplication(create_backend_app)
    snapshots = None
    if args.data:
        from sdctl.execute.local.emulator import durable, persist

        root = Path(args.data)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = persist.restore(root)
        print(f"data: {json.dumps(info)}", flush=True)
        snapshots = durable.Snapshotter(root).start()
        app = durable.DurableApp(app, snapshots)

    def stop(signum, frame):
        if snapshots is not None:
            snapshots.flush()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
