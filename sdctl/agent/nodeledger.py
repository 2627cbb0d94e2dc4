"""The agent's side of the node ledger (sdctl/contracts/ledger.py): its node's row in the task
store, written when the agent starts, every HEARTBEAT_SECONDS from a thread of its own, and
when it stops, so `sdctl cost --measured` knows how long each GPU node was up after Kubernetes
has forgotten it.

It reads its node once (the same `get nodes` the price needs: the launch time is the node's
creationTimestamp) and writes with the UpdateItem the agent already holds on the table. Off
the cluster (the local stack), or without a task store, there is no ledger. A write that fails
is logged once and tried again at the next heartbeat; no task waits for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime

from sdctl.agent import cost
from sdctl.contracts import ledger
from sdctl.contracts.tasks import timestamp

log = logging.getLogger("sdctl.agent")


class NodeLedger:
    def __init__(self, db, table: str, *, node: str, launched_at: str, instance_type: str, capacity: str,
                 price_per_hour: float | None, ttl_days: int, interval: float = ledger.HEARTBEAT_SECONDS,
                 clock=time.time) -> None:
        self.db, self.table, self.interval, self.clock, self.ttl_days = db, table, interval, clock, ttl_days
        self.row = {"node": node, "launched_at": launched_at, "instance_type": instance_type, "capacity": capacity,
                    "price_per_hour": price_per_hour}
        self.failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="node-ledger", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, db, table: str, ttl_days: int, env: dict | None = None, *, metadata=None,
                 **kwargs) -> NodeLedger | None:
        """This node's ledger, where the chart gave the agent its node's name and a token and
        there is a task store; else None."""
        env = os.environ if env is None else env
        node = env.get("NODE_NAME")
        if not (node and table and (metadata or cost.in_cluster(env))):
            return None
        try:
            meta = (metadata or cost.node_metadata)(node)
            labels = meta.get("labels") or {}
            launched_at = meta["creationTimestamp"]
        except Exception as e:  # noqa: BLE001 - the ledger is bookkeeping; the agent works without it
            log.warning("no node ledger: the node could not be read", extra={"node": node, "error": str(e)})
            return None
        try:
            price = cost.hourly_price(labels, env.get("GPU_PRICES") or "{}")
        except (KeyError, ValueError):
            price = None
        return cls(db, table, node=node, launched_at=launched_at, ttl_days=ttl_days, price_per_hour=price,
                   instance_type=labels.get("node.kubernetes.io/instance-type", "unknown"),
                   capacity=labels.get("karpenter.sh/capacity-type", "on-demand"), **kwargs)

    def seen(self) -> bool:
        """Record the node as up now; whether the store took it."""
        now = self.clock()
        try:
            self.db.update_item(TableName=self.table, **ledger.update(
                seen_at=timestamp(datetime.fromtimestamp(now, UTC)), expires_at=int(now + self.ttl_days * 86400), **self.row))
        except Exception as e:  # noqa: BLE001 - ConditionalCheckFailed (a later beat won) included
            if "ConditionalCheckFailed" in type(e).__name__ or "ConditionalCheckFailed" in str(e):
                return True
            if not self.failing:
                log.warning("the node ledger was not written; trying again", extra={"error": str(e)})
            self.failing = True
            return False
        self.failing = False
        return True

    def _beat(self) -> None:
        self.seen()
        while not self._stop.wait(self.interval):
            self.seen()

    def stop(self) -> None:
        """The last word: the node was up until now (the agent is stopping)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.seen()
