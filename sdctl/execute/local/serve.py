"""The local stack once it serves: watch the processes, restart what dies, and bring the AWS
emulator back with its data (sdctl/execute/local/emulator/persist.py) when it is restarted."""

from __future__ import annotations

import time
from pathlib import Path

from sdctl.contracts.events import Event, Report
from sdctl.errors import LocalStackError
from sdctl.execute.local import state as st
from sdctl.execute.local.supervisor import tail


def supervise(sup, moto, state: dict, data_dir: Path | None, stopping: dict, report: Report) -> None:
    """Until `stopping["flag"]`: report each process event, keep `state` on disk current."""
    from sdctl.execute.local.emulator import persist

    while not stopping["flag"]:
        events = sup.poll()
        if events:
            for e in events:
                report(e)
            if moto.popen.poll() is not None:
                if not data_dir:
                    raise LocalStackError("the AWS emulator died; its data is gone (the stack ran with --ephemeral)",
                                          hint=f"its log: {moto.log_path}\n{tail(moto.log_path)}")
                state.update(status="recovering", processes=sup.describe())
                st.write(state)
            elif any(e.status == "restarted" and e.source == "local:aws" for e in events):
                sup.wait_ready(moto, 60)
                state.update(status="ready", restored=persist.read_restore(data_dir) or {},
                             aws_restarts=moto.restarts)
                report(restore_event(state["restored"], data_dir, restart=True))
            state["processes"] = sup.describe()
            st.write(state)
        time.sleep(0.2)


def restore_event(info: dict, data_dir: Path, *, restart: bool = False) -> Event:
    what = "the AWS emulator restarted" if restart else "AWS data"
    if info.get("error"):
        return Event("local:aws", f"{what}: the data in {data_dir} could not be read ({info['error']}); "
                                  f"it was kept as {info.get('moved_to')} and the emulator started empty", "warning",
                     "unreadable", info)
    if info.get("restored"):
        age = max(0.0, info.get("at", 0) - info.get("taken_at", 0))
        return Event("local:aws", f"{what}: restored from {data_dir} ({info.get('objects', 0)} objects; "
                                  f"saved {age:.1f}s before the start)", "ok", "restored", info)
    return Event("local:aws", f"{what}: none kept yet; keeping it in {data_dir}", "step", "fresh", info)
