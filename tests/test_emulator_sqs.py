"""The emulator's faster SQS and dispatch (sdctl/execute/local/emulator/fast.py: faster_sqs,
faster_dispatch) answer as moto does.

One scenario, run twice in fresh processes (the patch is process-wide), once on moto as it is
and once patched, through boto3 against moto's in-process mock: sends, receives with a
visibility timeout, visibility changes (to 0, to more, past the 12-hour limit), deletes (twice,
with an old handle, with a made-up one), the counts GetQueueAttributes gives, a delayed
message, and a redrive to the dead-letter queue after maxReceiveCount. The two transcripts
must be equal. The patched run also remembers moto's per-request lookups (faster_dispatch), which
every call of the scenario goes through; a second check asks moto's server dispatcher for the
backend of each host the local stack's clients use (and a few it does not know) with and
without the memo, twice each.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

SCENARIO = r'''
import json, sys, time
import boto3
from botocore.exceptions import ClientError
from moto import mock_aws
if sys.argv[1] == "fast":
    from sdctl.execute.local.emulator.fast import faster_dispatch, faster_sqs
    faster_sqs()
    faster_dispatch()
out = []
def counts(q):
    a = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    out.append(("counts", sorted(a.items())))
def err(f):
    try:
        f(); out.append("ok")
    except ClientError as e:
        out.append(("error", e.response["Error"]["Code"]))
with mock_aws():
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": "2"})})["QueueUrl"]
    for i in range(6):
        sqs.send_message(QueueUrl=q, MessageBody=f"m{i}")
    sqs.send_message(QueueUrl=q, MessageBody="late", DelaySeconds=1)
    counts(q)
    got = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=3, VisibilityTimeout=30)["Messages"]
    out.append(("received", [m["Body"] for m in got]))
    counts(q)
    err(lambda: sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=0))
    err(lambda: sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=got[1]["ReceiptHandle"], VisibilityTimeout=60))
    err(lambda: sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=got[1]["ReceiptHandle"], VisibilityTimeout=43201))
    err(lambda: sqs.change_message_visibility(QueueUrl=q, ReceiptHandle="made-up", VisibilityTimeout=5))
    counts(q)
    err(lambda: sqs.delete_message(QueueUrl=q, ReceiptHandle=got[2]["ReceiptHandle"]))
    err(lambda: sqs.delete_message(QueueUrl=q, ReceiptHandle=got[2]["ReceiptHandle"]))
    err(lambda: sqs.delete_message(QueueUrl=q, ReceiptHandle="made-up"))
    counts(q)
    again = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    out.append(("again", sorted(m["Body"] for m in again)))
    old = got[0]["ReceiptHandle"]  # m0 was received twice: its first handle is an old one
    err(lambda: sqs.delete_message(QueueUrl=q, ReceiptHandle=old))
    counts(q)
    time.sleep(1.1)  # the delayed message's DelaySeconds
    counts(q)
    third = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    out.append(("third", sorted(m["Body"] for m in third)))
    fourth = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    out.append(("fourth", sorted(m["Body"] for m in fourth)))  # m3-m5 received twice: dead-lettered
    counts(q); counts(dlq)
print(json.dumps(out))
'''


def transcript(variant: str) -> list:
    r = subprocess.run([sys.executable, "-c", SCENARIO, variant], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_faster_sqs_answers_every_call_as_moto_does():
    moto, fast = transcript("moto"), transcript("fast")
    assert fast == moto
    assert ["error", "InvalidParameterValue"] in fast and ["error", "ReceiptHandleIsInvalid"] in fast
    assert any(step[0] == "counts" and ["ApproximateNumberOfMessagesDelayed", "1"] in step[1] for step in fast
               if isinstance(step, list))
    assert fast[-1] == ["counts", [["ApproximateNumberOfMessages", "3"], ["ApproximateNumberOfMessagesDelayed", "0"],
                                   ["ApproximateNumberOfMessagesNotVisible", "0"]]]  # the dead-letter queue


DISPATCH = r'''
import json, sys
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
if sys.argv[1] == "fast":
    from sdctl.execute.local.emulator.fast import faster_dispatch
    faster_dispatch()
app = DomainDispatcherApplication(create_backend_app)
hosts = [None, "moto_api", "s3", "sqs", "sqs.us-west-2.amazonaws.com", "sns.us-west-2.amazonaws.com",
         "dynamodb.us-west-2.amazonaws.com", "s3.us-west-2.amazonaws.com", "s3.amazonaws.com",
         "output.s3.us-west-2.amazonaws.com", "iam.amazonaws.com", "apigateway.us-west-2.amazonaws.com",
         "secretsmanager.us-west-2.amazonaws.com", "kms.us-west-2.amazonaws.com", "sts.amazonaws.com",
         "logs.us-west-2.amazonaws.com", "nothing.example.com", "127.0.0.1:5000"]
print(json.dumps([[h, app.get_backend_for_host(h), app.get_backend_for_host(h)] for h in hosts]))
'''


def test_faster_dispatch_finds_the_backend_moto_finds_for_every_host():
    def backends(variant: str) -> list:
        r = subprocess.run([sys.executable, "-c", DISPATCH, variant], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    moto, fast = backends("moto"), backends("fast")
    assert fast == moto
    found = {host: first for host, first, _ in fast}
    assert found["sqs.us-west-2.amazonaws.com"] == "sqs" and found["dynamodb.us-west-2.amazonaws.com"] == "dynamodb"
    assert found["output.s3.us-west-2.amazonaws.com"] == "s3" and found["nothing.example.com"] is None
