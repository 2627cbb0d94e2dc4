"""The queue agent: receive a task, run it on the runtime, store the results, notify, ack.

Delivery is at-least-once (SQS); results are effectively-once because every key depends on
the task id only. A message is deleted only after its results are stored and notified, or
after a permanent failure has been reported. Transient failures leave the message for
redelivery; its last allowed attempt reports `failed` and lets SQS move it to the
dead-letter queue, so nothing is dropped.

Named parts, each its own module and each built with only what it uses:

    Lanes     sqs.py       receive (lanes, highest first), release, delete; the redrive policy
    Preparer  stages.py    parse, skip what is done, cancelled or expired, fetch inputs; begin
    Runner    runner.py    the runtime call, alone or batched, watched for cancel and deadline
    Results   results.py   store and announce: S3, the results topic, webhooks, the task store
    Pipeline  pipeline.py  the threads over them: prefetch, runners, finishers, shutdown

failures.py says what can go wrong; app.py wires the AWS clients and the adapter; this
module builds the parts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sdctl.agent.deletes import Deletes
from sdctl.agent.heartbeat import Heartbeat
from sdctl.agent.observe import Metrics
from sdctl.agent.pipeline import QUIET_SECONDS, Pipeline, Stop  # noqa: F401
from sdctl.agent.results import Results
from sdctl.agent.runner import Runner
from sdctl.agent.settings import AgentSettings
from sdctl.agent.sqs import Lanes
from sdctl.agent.stages import Job, Preparer  # noqa: F401


class Agent(Pipeline):
    """The pipeline with its parts built from settings, clients and the runtime adapter."""

    def __init__(self, settings: AgentSettings, *, sqs, s3, sns, adapter, clock: Callable[[], float] = time.monotonic,
                 fetcher=None, store=None, price_per_second: float | None = None, deletion_cost=None):
        from sdctl.agent.inputs import Fetcher

        stopping = threading.Event()
        heartbeat = Heartbeat(sqs, settings.queue_url, settings.visibility_seconds)
        deletes = Deletes(sqs)
        metrics = Metrics(settings.runtime_name)
        lanes = Lanes(sqs, settings, heartbeat=heartbeat, deletes=deletes, stopping=stopping)
        results = Results(settings, s3=s3, sns=sns, sqs=sqs, store=store, lanes=lanes, metrics=metrics, clock=clock,
                          price_per_second=price_per_second)
        fetcher = fetcher or Fetcher(s3=s3, allowed_buckets={settings.bucket, *settings.input_buckets})
        if getattr(adapter, "fetcher", False) is None:  # outputs given as URLs come under the inputs' rules
            adapter.fetcher = fetcher
        preparer = Preparer(settings, store=store, fetcher=fetcher, lanes=lanes, results=results, metrics=metrics,
                            clock=clock)
        runner = Runner(settings, adapter=adapter, store=store, sqs=sqs, lanes=lanes, metrics=metrics, clock=clock,
                        stopping=stopping, deletion_cost=deletion_cost)
        super().__init__(settings, lanes=lanes, preparer=preparer, runner=runner, results=results,
                         heartbeat=heartbeat, deletes=deletes, metrics=metrics, stopping=stopping, clock=clock)
        # What it was built from, for the entrypoint's health server and for tests to read.
        self.sqs, self.s3, self.sns, self.store, self.adapter = sqs, s3, sns, store, adapter
        self.ledger = None  # this node's row of the node ledger (app.build sets it on a GPU node)
