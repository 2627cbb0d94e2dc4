"""How long a user waits for sdctl to start: the median of N runs of each command, next to
`python -c pass` (the interpreter alone), `python -c "import typer"` and the floor every
command with options pays for its libraries (Typer parses options through pydantic, and the
output is rich), in the same run.

    python bench/cli_start.py [--runs 7]
    python bench/cli_start.py --against DIR [--other-path LIBS] [--runs 21]

With `--against DIR` (another checkout, e.g. `git worktree add DIR <commit>`) each sdctl
command runs alternately from this checkout and from DIR (its sdctl first on PYTHONPATH), so
both see the same machine, and the ratio of their medians is printed. `--other-path LIBS`
puts LIBS after DIR on the other side's PYTHONPATH, for libraries of other versions than this
checkout's (`pip install --no-deps --target LIBS typer==0.29.2`).
"""

from __future__ import annotations

import argparse
import os
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
    "libraries' floor": [sys.executable, "-c", "import typer.main, pydantic, yaml, rich.console"],
    "sdctl --help": [sys.executable, "-m", "sdctl", "--help"],
    "sdctl validate": [sys.executable, "-m", "sdctl", "validate"],
    "sdctl cost": [sys.executable, "-m", "sdctl", "cost"],
    "sdctl local status": [sys.executable, "-m", "sdctl", "local", "status"],
    "sdctl generate --help": [sys.executable, "-m", "sdctl", "generate", "--help"],
}


def seconds(argv: list[str], cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_seconds(argv: list[str], cwd: Path, runs: int) -> float:
    return statistics.median(seconds(argv, cwd) for _ in range(runs))


def against(other: Path, cwd: Path, runs: int, libs: Path | None = None) -> None:
    path = os.pathsep.join(str(p) for p in (other, libs) if p is not None)
    envs = {"this": dict(os.environ), "other": dict(os.environ, PYTHONPATH=path)}
    print(f"{'command':28} {'other':>9} {'this':>9} {'this/other':>11}")
    for name, argv in COMMANDS.items():
        if not name.startswith("sdctl"):
            continue
        times: dict[str, list[float]] = {k: [] for k in envs}
        for _ in range(runs):
            for k, env in envs.items():
                times[k].append(seconds(argv, cwd, env))
        this, that = (statistics.median(times[k]) for k in ("this", "other"))
        print(f"{name:28} {that * 1000:7.0f}ms {this * 1000:7.0f}ms {this / that:11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--against", type=Path, help="another checkout to compare with, run for run")
    parser.add_argument("--other-path", type=Path, help="libraries for the other checkout, after it on PYTHONPATH")
    args = parser.parse_args()
    cwd = Path(tempfile.mkdtemp(prefix="sdctl-start-"))
    # Against another checkout, its example: an older one may refuse keys the newer example
    # has (and then stops at the error, far faster than it would run), while the newer accepts
    # the older's. Both sides then do the same work.
    shutil.copy((args.against or ROOT) / "sdctl.example.yaml", cwd / "sdctl.yaml")
    if args.against:
        if not (args.against / "sdctl" / "__init__.py").is_file():
            parser.error(f"--against {args.against}: not an sdctl checkout (no sdctl/__init__.py)")
        if args.other_path and not args.other_path.is_dir():
            parser.error(f"--other-path {args.other_path}: not a directory")
        return against(args.against.resolve(), cwd, args.runs,
                       args.other_path.resolve() if args.other_path else None)
    medians = {name: median_seconds(argv, cwd, args.runs) for name, argv in COMMANDS.items()}
    base = medians["python -c pass"]
    print(f"{'command':28} {'median':>9} {'x python':>9}")
    for name, m in medians.items():
        print(f"{name:28} {m * 1000:7.0f}ms {m / base:8.1f}x")


if __name__ == "__main__":
    main()
