"""What one agent's SQS calls cost the local emulator with a backlog waiting, with moto as it
is and with the emulator's faster_sqs() (sdctl/execute/local/emulator/fast.py), in one invocation.

For each backlog (messages waiting in the queue) it times 100 rounds of what an agent does per
task: ReceiveMessage (1), ChangeMessageVisibility, DeleteMessage, called on moto's backend
in-process (no HTTP: this measures the backend's own work). Each variant runs in its own
process, since the patch is process-wide. (moto fills a queue in quadratic time, so the backlogs
stay small; the ratio grows with them.)

    python bench/emulator_sqs.py [--backlogs 100,1000,2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(backlog: int, fast: bool, rounds: int = 100) -> float:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    if fast:
        sys.path.insert(0, str(ROOT))
        from sdctl.execute.local.emulator.fast import faster_sqs

        faster_sqs()
    sqs = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    sqs.create_queue("tasks")
    for i in range(backlog):
        sqs.send_message("tasks", json.dumps({"id": i}))
    started = time.perf_counter()
    for _ in range(rounds):
        [m] = sqs.receive_message("tasks", 1, 0, 30)
        sqs.change_message_visibility("tasks", m.receipt_handle, 60)
        sqs.delete_message("tasks", m.receipt_handle)
    return (time.perf_counter() - started) / rounds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlogs", default="100,1000,2000")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(one(int(args.child[0]), args.child[1] == "fast"))
        return
    print(f"{'backlog':>8} {'moto ms/task':>13} {'faster ms/task':>15} {'ratio':>7}")
    for backlog in (int(b) for b in args.backlogs.split(",")):
        got = {}
        for variant in ("moto", "fast"):
            out = subprocess.run([sys.executable, __file__, "--child", str(backlog), variant], check=True,
                                 capture_output=True, text=True).stdout
            got[variant] = float(out.strip().splitlines()[-1]) * 1000
        print(f"{backlog:8d} {got['moto']:13.2f} {got['fast']:15.2f} {got['moto'] / got['fast']:7.1f}")


if __name__ == "__main__":
    main()
