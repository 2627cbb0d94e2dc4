"""The local stack's ports, kept across `local down` and `local up`.

A client configured like the guidance's scripts (`API_ENDPOINT`, curl, locust) and every
gallery page made before a restart name the gateway's port; a new one at each `local up`
broke them all. Each process's port is remembered in `.sdctl/ports.json` (beside the state
file, which `down` removes) and taken again at the next `up`; a port something else holds
now is replaced by a free one, and the event says so. `local up --port N` pins the gateway's:
if N is taken, `up` stops with an error instead of moving it.
"""

from __future__ import annotations

import json
import socket

from sdctl.contracts.events import Event, Report, ignore
from sdctl.errors import UsageError
from sdctl.execute.local import state as st

FILE = "ports.json"


def bindable(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (a socket in TIME_WAIT does not count: the servers set
    SO_REUSEADDR too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _path():
    return st.state_dir() / FILE


def load() -> dict[str, int]:
    try:
        data = json.loads(_path().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {k: int(v) for k, v in data.items() if isinstance(v, int) and 0 < v < 65536}


class Ports:
    """Hands out each process's port: pinned, else the one it had, else a free one."""

    def __init__(self, pinned: dict[str, int] | None = None, report: Report = ignore):
        self.pinned = dict(pinned or {})
        self.saved = load()
        self.report = report

    def take(self, name: str) -> int:
        want = self.pinned.get(name)
        if want is not None:
            if not bindable(want):
                raise UsageError(f"port {want} for the {name} is in use",
                                 hint="stop what holds it, or choose another with --port")
            return self._keep(name, want)
        before = self.saved.get(name)
        if before is not None and bindable(before):
            return self._keep(name, before)
        port = free_port()
        if before is not None:
            self.report(Event(f"local:{name}", f"port {before} is taken now; the {name} moves to {port}", "warning",
                              "port-moved", {"before": before, "port": port}))
        return self._keep(name, port)

    def _keep(self, name: str, port: int) -> int:
        self.saved[name] = port
        path = _path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.saved, indent=2, sort_keys=True) + "\n")
        return port
