"""The local stack's AWS emulator: CPU and latency per call, moto's dispatch against sdctl's.

Starts two emulators (`python -m sdctl.execute.local.emulator`) side by side, IAM enforced as
on the local stack (a user whose policy names the queue, bucket, topic and table, like the
agent's): one as it ships, one with `faster_dispatch` turned off (moto's own per-request
lookups). Each call the agent and the handler make runs in rounds that alternate between the
two, so both see the same machine; the emulator's CPU comes from /proc/PID/stat.

    python bench/emulator_calls.py [--calls 100] [--rounds 5]

It prints, per call, the median over rounds of the emulator's CPU per call and the client's
wall time per call for each, and the ratio moto / sdctl.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
PLAIN = ("import sys; from sdctl.execute.local.emulator import server as e; "
         "e.faster_dispatch = lambda: None; e.main(sys.argv[1:])")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, plain: bool):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = ["-c", PLAIN] if plain else ["-m", "sdctl.execute.local.emulator"]
        self.proc = subprocess.Popen([sys.executable, *argv, "-p", str(self.port)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("the emulator did not start") from None
                time.sleep(0.05)
        self.calls = self._provision()

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _provision(self) -> dict:
        cfg = Config(retries={"max_attempts": 5, "mode": "standard"})
        admin = dict(region_name="us-west-2", endpoint_url=self.url, config=cfg,
                     aws_access_key_id="admin", aws_secret_access_key="admin")
        sqs = boto3.client("sqs", **admin)
        queue = sqs.create_queue(QueueName="tasks")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("dynamodb", **admin).create_table(
            TableName="tasks", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        boto3.client("s3", **admin).create_bucket(
            Bucket="output", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        sns = boto3.client("sns", **admin)
        topic = sns.create_topic(Name="results")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="agent")
        table = "arn:aws:dynamodb:us-west-2:123456789012:table/tasks"
        iam.put_user_policy(UserName="agent", PolicyName="agent", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Resource": queue_arn, "Action": [
                    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage"]},
                {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::output/*"},
                {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic},
                {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"], "Resource": table}]}))
        key = iam.create_access_key(UserName="agent")["AccessKey"]
        httpx.post(f"{self.url}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
        signed = dict(region_name="us-west-2", endpoint_url=self.url, config=cfg,
                      aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        sqs, ddb, s3, sns = (boto3.client(n, **signed) for n in ("sqs", "dynamodb", "s3", "sns"))

        def receive_delete(i):
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1).get("Messages", []):
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

        return {
            "SendMessage": lambda i: sqs.send_message(QueueUrl=queue, MessageBody="x" * 500),
            "ReceiveMessage + DeleteMessage": receive_delete,
            "GetItem": lambda i: ddb.get_item(TableName="tasks", Key={"id": {"S": str(i)}}, ConsistentRead=True),
            "UpdateItem": lambda i: ddb.update_item(
                TableName="tasks", Key={"id": {"S": str(i)}}, UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "running"}}),
            "PutObject 20 KB": lambda i: s3.put_object(Bucket="output", Key=f"{i}.png", Body=b"x" * 20000),
            "Publish (to SQS)": lambda i: sns.publish(TopicArn=topic, Message="x" * 500),
        }

    def run(self, name: str, n: int) -> tuple[float, float]:
        call = self.calls[name]
        cpu, wall = self.cpu(), time.perf_counter()
        for i in range(n):
            call(i)
        return 1000 * (self.cpu() - cpu) / n, 1000 * (time.perf_counter() - wall) / n

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    plain, fast = Emulator(plain=True), Emulator(plain=False)
    try:
        print(f"{'call':32s} {'moto CPU':>9s} {'sdctl CPU':>9s} {'ratio':>6s} {'moto ms':>8s} {'sdctl ms':>8s}")
        for name in fast.calls:
            for emu in (plain, fast):
                emu.run(name, 10)  # warm-up: first-call imports and lookups
            got = {plain: [], fast: []}
            for _ in range(args.rounds):
                for emu in (plain, fast):
                    got[emu].append(emu.run(name, args.calls))
            (pc, pw), (fc, fw) = ((statistics.median(c for c, _ in got[e]), statistics.median(w for _, w in got[e]))
                                  for e in (plain, fast))
            print(f"{name:32s} {pc:9.2f} {fc:9.2f} {pc / fc if fc else float('nan'):6.2f} {pw:8.2f} {fw:8.2f}")
        print("CPU: the emulator's, ms per call (median of rounds); ms: the client's wall time per call")
    finally:
        plain.stop()
        fast.stop()


if __name__ == "__main__":
    main()
