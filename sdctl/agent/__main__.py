"""`python -m sdctl.agent`: the queue agent, as the agent image runs it (no CLI libraries).
The one wiring of the agent: the image's entrypoint, `sdctl agent run` and the local stack
all start it here.

Configured by environment variables (docs/agent.md; written by sdctl/contracts/agent_env.py).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sdctl.agent")
    ap.add_argument("--max-tasks", type=int, default=None, help="exit after this many tasks (for tests)")
    ap.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"),
                    help="DEBUG, INFO, WARNING or ERROR (env LOG_LEVEL)")
    args = ap.parse_args(argv)
    from sdctl.agent.app import build, configure_logging
    from sdctl.agent.settings import AgentSettings
    from sdctl.errors import SdctlError

    configure_logging(args.log_level.upper())
    try:
        settings = AgentSettings.from_env()
    except SdctlError as e:
        sys.stderr.write(f"error: {e.message}\n" + (f"hint: {e.hint}\n" if e.hint else ""))
        return 2
    agent = build(settings)
    agent.install_signal_handlers(settings.shutdown_grace_seconds)
    if settings.health_port:
        from sdctl.agent.observe import serve

        serve(agent.metrics, lambda: agent.runner.unusable is None and _ready(agent.adapter), settings.health_port)
    agent.run(max_tasks=args.max_tasks)
    if agent.ledger:
        agent.ledger.stop()
    from sdctl.contracts.agent_env import UNUSABLE_EXIT

    return UNUSABLE_EXIT if agent.runner.unusable else 0


def _ready(adapter) -> bool:
    from sdctl.agent.failures import RuntimeUnusable

    try:
        return adapter.ready()
    except RuntimeUnusable:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
