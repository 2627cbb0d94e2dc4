"""`python -m sdctl.agent`: the queue agent, as the agent image runs it (no CLI libraries).

Configured by environment variables (docs/agent.md); `sdctl agent run` does the same.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    from sdctl.agent.settings import AgentSettings
    from sdctl.agent.worker import build, configure_logging
    from sdctl.errors import SdctlError

    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    try:
        settings = AgentSettings.from_env()
    except SdctlError as e:
        sys.stderr.write(f"error: {e.message}\n" + (f"hint: {e.hint}\n" if e.hint else ""))
        return 2
    agent = build(settings)
    agent.install_signal_handlers(settings.shutdown_grace_seconds)
    if settings.health_port:
        from sdctl.agent.observe import serve

        serve(agent.metrics, agent.adapter.ready, settings.health_port)
    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
