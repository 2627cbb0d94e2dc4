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
  signature in the query string) answered 500: sdctl/execute/local/presigned.py checks it as S3
  does.

Conditions and resource policies stay unevaluated (moto's docs/iam.rst): the rule tests in
tests/test_aws_rules.py cover what those decide on AWS.
"""

from __future__ import annotations

import json
import sys

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
    from sdctl.execute.local import presigned

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


def faster_sqs() -> None:
    """moto's SQS does per call what AWS does not: every SendMessage and every received message
    computes all of the queue's attributes (three passes over every message, each asking the
    clock through datetime arithmetic), GetQueueAttributes computes them again per name asked,
    and a receipt handle is found by scanning the queue. With a thousand tasks waiting an
    agent's receive, visibility change and delete cost the emulator ~200 ms of its one core
    (`python bench/emulator_sqs.py`), and a long load test slows to a crawl. Same answers, less
    work: the clock is time.time(); the counts are one pass; the retention check reads the one
    attribute it needs; GetQueueAttributes builds the attributes once; receipt handles are
    indexed as moto hands them out (a weak map, so a deleted message leaves it), and a handle
    the index lacks (one from before a restore) falls back to moto's scan."""
    import weakref

    from moto.sqs import models

    if getattr(models.Queue, "_sdctl_fast", False):
        return
    import time

    original_unix_time = models.unix_time

    def unix_time(dt=None):
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt=None):
        return time.time() * 1000.0 if dt is None else original_unix_time(dt) * 1000.0

    models.unix_time, models.unix_time_millis = unix_time, unix_time_millis

    def counts(self):
        now = time.time() * 1000.0
        visible = delayed = hidden = 0
        for m in self._messages:
            if now < m.delayed_until:
                delayed += 1
            if now > m.visible_at:
                visible += not now < m.delayed_until
            else:
                hidden += 1
        return visible, hidden, delayed

    def get_queue_attributes(self, queue_name, attribute_names):
        queue = self.get_queue(queue_name)
        if not attribute_names:
            return {}
        valid = ["All"] + queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
        invalid = next((n for n in attribute_names if n not in valid), None)
        if invalid or invalid == "":
            raise models.InvalidAttributeName(invalid)
        attributes = queue.attributes
        if "All" in attribute_names:
            return attributes
        return {n: attributes[n] for n in attribute_names if attributes.get(n) is not None}

    def retained(self, queue_name, message):
        period = int(self.get_queue(queue_name).message_retention_period)
        return period + message.sent_timestamp / 1000 > time.time()

    models.Queue.approximate_number_of_messages = property(lambda self: counts(self)[0])
    models.Queue.approximate_number_of_messages_not_visible = property(lambda self: counts(self)[1])
    models.Queue.approximate_number_of_messages_delayed = property(lambda self: counts(self)[2])
    models.SQSBackend.get_queue_attributes = get_queue_attributes
    models.SQSBackend.is_message_valid_based_on_retention_period = retained
    handles: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
    original_mark_received = models.Message.mark_received

    def mark_received(self, visibility_timeout=None):
        original_mark_received(self, visibility_timeout)
        handles[self.receipt_handle] = self

    def messages(self):
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def find(queue, receipt_handle):
        m = handles.get(receipt_handle)
        return m if m is not None and m in queue._messages else None  # `in`: an identity scan in C

    original_delete = models.Queue.delete_message

    def delete_message(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            return
        m = find(self, receipt_handle)
        if m is None:
            return original_delete(self, receipt_handle)
        try:  # in place, one C call: a message another thread appends meanwhile is kept
            self._messages.remove(m)
        except ValueError:  # deleted by another call meanwhile
            pass
        self.pending_messages.discard(m)
        self.deleted_messages.update(m.all_receipt_handles)

    original_visibility = models.SQSBackend.change_message_visibility

    def change_message_visibility(self, queue_name, receipt_handle, visibility_timeout):
        queue = self.get_queue(queue_name)
        m = find(queue, receipt_handle)
        if m is None:
            return original_visibility(self, queue_name, receipt_handle, visibility_timeout)
        # what moto's loop does once it has found the message
        if unix_time_millis() + int(visibility_timeout) * 1000 - m.sent_timestamp > 43200 * 1000:
            raise models.InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                "VisibilityTimeout for the message is beyond the limit [43200 seconds]")
        m.change_visibility(visibility_timeout)
        if m.visible and m in queue.pending_messages:
            queue.pending_messages.remove(m)

    models.Message.mark_received = mark_received
    models.Queue.messages = property(messages)
    models.Queue.delete_message = delete_message
    models.SQSBackend.change_message_visibility = change_message_visibility
    models.Queue._sdctl_fast = True


def faster_dispatch() -> None:
    """moto's server redoes per request what cannot change while it serves: it finds the backend
    for a host by listing its own package folder (~170 directory entries, a stat each) and then
    trying every service's URL patterns in turn, under one lock that every request waits on; it
    lists a response class's methods with inspect.getmembers to look the action up; and SQS
    builds a queue's attributes on every SendMessage (to read one of them), turning each name
    from CamelCase with a character loop. All three are pure functions of their argument here,
    so they are remembered: a request costs the emulator about 1.5 ms less CPU
    (`python bench/emulator_calls.py`). Nothing else changes: the first answer for a host, a
    class or a name is moto's own (tests/test_emulator_sqs.py checks the dispatch matches)."""
    import functools

    from moto.core import responses, utils
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs import models

    if getattr(DomainDispatcherApplication, "_sdctl_fast", False):
        return
    original_backend_for_host = DomainDispatcherApplication.get_backend_for_host
    backends: dict[str | None, object] = {}

    def get_backend_for_host(self, host):
        try:
            return backends[host]
        except KeyError:
            found = original_backend_for_host(self, host)
            if len(backends) < 4096:  # hosts are service.region names: a handful in practice
                backends[host] = found
            return found

    method_names: dict[type, list[str]] = {}

    def method_names_from_class(clazz) -> list[str]:
        names = method_names.get(clazz)
        if names is None:
            names = method_names[clazz] = utils.method_names_from_class(clazz)
        return names

    underscores = functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores)
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host
    responses.method_names_from_class = method_names_from_class
    responses.camelcase_to_underscores = underscores
    models.camelcase_to_underscores = underscores
    DomainDispatcherApplication._sdctl_fast = True


def main(argv: list[str] | None = None) -> None:
    """moto's server, with the corrections above and, given `--data DIR`, its memory kept in
    DIR (sdctl/execute/local/persist.py): read back before serving, snapshotted as it changes,
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
    from sdctl.execute.local import rules

    rules.apply()
    faster_sqs()
    faster_dispatch()
    app = DomainDispatcherApplication(create_backend_app)
    snapshots = None
    if args.data:
        from sdctl.execute.local import durable, persist

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
