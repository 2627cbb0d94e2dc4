"""`sdctl simulate`, run as a user runs it, against queueing theory: fixed replicas (min = max),
no agent overhead, exponential, fixed or lognormal render times; the mean wait in queue beside
Erlang C (M/M/c) or Pollaczek-Khinchine (M/G/1, M/D/1).

    python bench/sim_theory.py [--duration 30d] [--config sdctl.example.yaml]

Each row is one `sdctl simulate ... -o json` process; the last column is simulated / theory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = [  # servers, load, law, cv
    (8, 0.9, "exponential", 1.0), (4, 0.7, "exponential", 1.0), (2, 0.5, "exponential", 1.0),
    (1, 0.5, "exponential", 1.0), (1, 0.9, "exponential", 1.0),
    (1, 0.5, "fixed", 0.0), (1, 0.8, "fixed", 0.0), (1, 0.95, "fixed", 0.0),
    (1, 0.7, "lognormal", 0.5), (1, 0.85, "lognormal", 1.5),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", default="30d")
    ap.add_argument("--config", default=str(ROOT / "sdctl.example.yaml"))
    ap.add_argument("--seconds-per-image", type=float, default=1.5)
    args = ap.parse_args()
    from sdctl.analysis.sim import run as sim

    mean = args.seconds_per_image
    print(f"{'queue':<8}{'law':<18}{'rho':>5}{'tasks':>12}{'simulated s':>13}{'theory s':>10}{'sim/theory':>12}")
    for servers, rho, law, cv in CASES:
        lam = rho * servers / mean
        cmd = [sys.executable, "-m", "sdctl", "simulate", "-c", args.config, "--rate", f"{lam:.6f}/s",
               "--duration", args.duration, "--set", f"min_replicas={servers}", "--set", f"max_replicas={servers}",
               "--set", f"service_dist={law}", "--set", f"service_cv={cv}", "--set", f"seconds_per_image={mean}",
               "--set", "agent_overhead_seconds=0", "-o", "json"]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout)["result"]
        theory = (sim.erlang_c_wait(lam, mean, servers) if law == "exponential" and servers > 1
                  else sim.pollaczek_khinchine_wait(lam, mean, cv))
        kind = {"exponential": "M", "fixed": "D", "lognormal": "G"}[law]
        got = r["wait_seconds"]["mean"]
        print(f"{'M/' + kind + '/' + str(servers):<8}{law + (f' cv {cv:g}' if law == 'lognormal' else ''):<18}"
              f"{rho:>5.2f}{r['tasks']:>12,}{got:>13.3f}{theory:>10.3f}{got / theory:>12.3f}")


if __name__ == "__main__":
    main()
