"""The agent's named parts, each on its own (sdctl/agent/worker.py draws them): a part is built
with only what it uses, so it can be tried with nothing else running. The parts a test does not
exercise, the AWS clients and the task store are recorders or stand-ins made here that note
what they were asked (tests/test_agent.py runs the whole agent against the emulator)."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

from sdctl.agent.failures import TransientFailure
from sdctl.agent.observe import Metrics
from sdctl.agent.results import Results
from sdctl.agent.runner import Runner
from sdctl.agent.sqs import Lanes
from sdctl.agent.stages import Job, Preparer


class Recorder:
    """Notes every call made on it, by name, with its arguments."""

    def __init__(self, **answers) -> None:
        self.calls: list[tuple] = []
        self.answers = answers

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self.answers.get(name)
        return call


def settings(**more):
    base = dict(queue_url="q", lanes=(("normal", "q"),), max_receive_count=3, batch_size=0, bucket="b",
                webhook_queue_url="", topic_arn="t", max_task_seconds=30, batch_tasks=1, runtime_name="r",
                visibility_seconds=30, wait_seconds=1)
    return SimpleNamespace(**{**base, **more})


def message(task_id: str = "t-1", attempt: int = 1) -> dict:
    task = {"metadata": {"id": task_id, "runtime": "r", "prefix": "output", "tasktype": "text-to-image"},
            "content": {"prompt": "a fox"}}
    return {"MessageId": "m", "ReceiptHandle": "h", "Body": json.dumps({"Type": "Notification", "Message": json.dumps(task)}),
            "Attributes": {"ApproximateReceiveCount": str(attempt)}}


def test_the_preparer_alone_drops_a_task_cancelled_before_it_ran_and_deletes_its_message():
    store = SimpleNamespace(quietly=lambda what, fn, *a, **k: fn(*a, **k),
                            peek=lambda task_id: {"status": "cancelled"})
    lanes, results = Recorder(), Recorder()
    preparer = Preparer(settings(), store=store, fetcher=None, lanes=lanes, results=results,
                        metrics=Metrics("r"), clock=time.monotonic)
    assert preparer.prepare(message()) == "cancelled"
    assert [c[0] for c in lanes.calls] == ["delete"] and results.calls == []


def test_the_lanes_alone_ask_for_about_a_second_of_work_at_the_runtimes_pace():
    lanes = Lanes(Recorder(), settings(), heartbeat=Recorder(), deletes=Recorder(), stopping=threading.Event())
    assert lanes.receive_count() == 1
    for _ in range(30):
        lanes.paced(0.05)
    assert lanes.receive_count() == 10
    lanes.release(message(), delay=4)
    [(name, _, kwargs)] = lanes.sqs.calls
    assert name == "change_message_visibility" and kwargs["VisibilityTimeout"] == 4


def test_results_alone_retry_a_transient_failure_with_a_backoff_and_report_the_last_attempt():
    lanes = Lanes(Recorder(), settings(), heartbeat=Recorder(), deletes=Recorder(), stopping=threading.Event())
    s3, sns = Recorder(), Recorder()
    results = Results(settings(), s3=s3, sns=sns, sqs=Recorder(), store=None, lanes=lanes, metrics=Metrics("r"),
                      clock=time.monotonic)
    task = json.loads(json.loads(message()["Body"])["Message"])
    job = Job(message=message(), task=task, attempt=2, received=0.0, ctx={"task_id": "t-1"})
    assert results.finish(job, TransientFailure("runtime-error", "boom")) == "retry"
    assert lanes.sqs.calls[-1][2]["VisibilityTimeout"] == 4  # 2 ** attempt
    job.attempt = 3  # the last the queue allows
    assert results.finish(job, TransientFailure("runtime-error", "boom")) == "failed"
    assert [c[0] for c in s3.calls] == ["put_object"] and [c[0] for c in sns.calls] == ["publish"]
    assert [c[0] for c in lanes.deletes.calls] == ["add"]


def test_the_runner_alone_reports_an_empty_answer_as_a_permanent_failure():
    adapter = Recorder(run=SimpleNamespace(images=[], value=None, model="m", parameters={}, info={}), ready=True)
    lanes = Recorder()
    runner = Runner(settings(), adapter=adapter, store=None, sqs=Recorder(), lanes=lanes, metrics=Metrics("r"),
                    clock=time.monotonic, stopping=threading.Event())
    task = json.loads(json.loads(message()["Body"])["Message"])
    outcome = runner.execute(Job(message=message(), task=task, attempt=1, received=0.0, ctx={"task_id": "t-1"}))
    assert outcome.code == "no-images"
    assert [c[0] for c in adapter.calls if c[0] == "run"] == ["run"]


def test_a_task_that_asked_for_fewer_attempts_than_its_queue_allows_fails_on_its_last_not_in_the_dlq():
    """metadata.maxAttempts 1 on a queue that allows 3 (with a dead-letter queue): the first
    transient failure is final: reported `failed` with the limit named, its message deleted, not
    released to come back or to reach the dead-letter queue."""
    lanes = Lanes(Recorder(), settings(), heartbeat=Recorder(), deletes=Recorder(), stopping=threading.Event())
    lanes.has_dead_letter_queue = True
    sns = Recorder()
    results = Results(settings(), s3=Recorder(), sns=sns, sqs=Recorder(), store=None, lanes=lanes,
                      metrics=Metrics("r"), clock=time.monotonic)
    task = json.loads(json.loads(message()["Body"])["Message"])
    task["metadata"]["maxAttempts"] = 1
    job = Job(message=message(), task=task, attempt=1, received=0.0, ctx={"task_id": "t-1"})
    assert results.finish(job, TransientFailure("runtime-error", "boom")) == "failed"
    [(_, _, published)] = sns.calls
    assert "maxAttempts 1" in json.loads(published["Message"])["error"]["message"]
    assert lanes.sqs.calls == [] and [c[0] for c in lanes.deletes.calls] == ["add"]
    task["metadata"]["maxAttempts"] = 5  # more than the queue allows: the queue's limit holds
    job.attempt = 1
    assert results.finish(job, TransientFailure("runtime-error", "boom")) == "retry"
