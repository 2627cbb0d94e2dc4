"""How long a user waits for sdctl to start: the median of N runs of each command, next to
`python -c pass` (the interpreter alone), `python -c "import typer"` and the floor every
command with options pays for its libraries (Typer parses options through pydantic, and the
output is rich), in the same run.

    python bench/cli_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    "libraries' floor": [sys.executable, "-c", "import typer._adapters, rich.console"],
    "sdctl --help": [sys.executable, "-m", "sdctl", "--help"],
    "sdctl validate": [sys.executable, "-m", "sdctl", "validate"],
    "sdctl cost": [sys.executable, "-m", "sdctl", "cost"],
    "sdctl local status": [sys.executable, "-m", "sdctl", "local", "status"],
    "sdctl generate --help": [sys.executable, "-m", "sdctl", "generate", "--help"],
}


def median_seconds(argv: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cwd = Path(tempfile.mkdtemp(prefix="sdctl-start-"))
    shutil.copy(ROOT / "sdctl.example.yaml", cwd / "sdctl.yaml")
    medians = {name: median_seconds(argv, cwd, args.runs) for name, argv in COMMANDS.items()}
    base = medians["python -c pass"]
    print(f"{'command':28} {'median':>9} {'x python':>9}")
    for name, m in medians.items():
        print(f"{name:28} {m * 1000:7.0f}ms {m / base:8.1f}x")


if __name__ == "__main__":
    main()
