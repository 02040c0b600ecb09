"""Time ``pointnet-kit --help`` and ``--version`` (new processes), interleaved with a bare interpreter start.

    python scripts/bench_cli.py [--repeat 5]

Prints JSON: the median wall time of each command over ``--repeat`` runs, run A B C A B C ...
so that load on a shared machine hits all alike. Target: --help well under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python_startup": [sys.executable, "-c", "pass"],
    "help": [sys.executable, "-m", "pointnet_kit", "--help"],
    "version": [sys.executable, "-m", "pointnet_kit", "--version"],
    "import_torch": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (default: 5)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    print(json.dumps({
        "repeat": args.repeat,
        "median_s": {name: round(statistics.median(t), 3) for name, t in times.items()},
        "all_s": {name: [round(x, 3) for x in t] for name, t in times.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
