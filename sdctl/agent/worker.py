"""The queue agent: receive a task, run it on the runtime, store the results, notify, ack.

Delivery is at-least-once (SQS); results are effectively-once because every key depends on
the task id only. A message is deleted only after its results are stored and notified, or
after a permanent failure has been reported. Transient failures leave the message for
redelivery; its last allowed attempt reports `failed` and lets SQS move it to the
dead-letter queue, so nothing is dropped.

One concept a module: failures.py (what can go wrong), sqs.py (receive, delete, release),
stages.py (prepare, execute), results.py (S3 + SNS + store), pipeline.py (threads, batching,
shutdown), app.py (wiring), and this class, which holds their state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sdctl.agent.heartbeat import Heartbeat
from sdctl.agent.pipeline import QUIET_SECONDS, Pipeline, Stop  # noqa: F401
from sdctl.agent.results import ResultSide
from sdctl.agent.settings import AgentSettings
from sdctl.agent.sqs import QueueSide
from sdctl.agent.stages import Job, Stages  # noqa: F401


class Agent(Pipeline, Stages, ResultSide, QueueSide):
    def __init__(self, settings: AgentSettings, *, sqs, s3, sns, adapter, clock: Callable[[], float] = time.monotonic,
                 fetcher=None, store=None):
        from sdctl.agent.inputs import Fetcher

        self.settings = settings
        self.store = store  # the task store (sdctl.agent.store.TaskStore), if the deployment has one
        self.fetcher = fetcher or Fetcher(s3=s3, allowed_buckets={settings.bucket, *settings.input_buckets})
        self.sqs = sqs
        self.s3 = s3
        self.sns = sns
        self.adapter = adapter
        self.clock = clock
        self.price_per_second: float | None = None  # this node's, when known (sdctl/agent/cost.py)
        self.stopping = threading.Event()
        self.runtime_down = threading.Event()  # set while a runner waits for a restarted runtime
        self.processed = 0
        self._claimed = 0
        self._count_lock = threading.Lock()
        self.max_receive_count = settings.max_receive_count
        self.has_dead_letter_queue = False
        self.heartbeat = Heartbeat(sqs, settings.queue_url, settings.visibility_seconds)
        from sdctl.agent.deletes import Deletes

        self.deletes = Deletes(sqs)
        self.running: dict[str, dict] = {}  # message id -> message, for tasks on the runtime now
        from sdctl.agent.observe import Metrics

        self.metrics = Metrics(settings.runtime_name)
