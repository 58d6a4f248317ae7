"""How long `vstpipe` takes to answer before it does any work, in one run.

    python bench/startup_bench.py              # 7 rounds
    python bench/startup_bench.py --rounds 3
    python bench/startup_bench.py --smoke      # 1 round, for CI

Each round starts, interleaved so that load hits them alike: ``vstpipe --version`` and
``vstpipe --help`` (answered by the command list alone, vstpipe/commands.py), ``vstpipe render
--help`` (which loads the commands and with them torch, PyAV and OpenCV), and, as the floor,
``python -c pass``. Each is a fresh process (``python -m vstpipe``, the installed script's
entry point), timed from start to exit. Prints the median wall time of each and its ratio to
``vstpipe render --help``, measured in the same run. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "vstpipe --version": [sys.executable, "-m", "vstpipe", "--version"],
    "vstpipe --help": [sys.executable, "-m", "vstpipe", "--help"],
    "vstpipe render --help": [sys.executable, "-m", "vstpipe", "render", "--help"],
}
BASE = "vstpipe render --help"


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.rounds
    seconds: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, command in CASES.items():
            seconds[name].append(_time(command))
    base = statistics.median(seconds[BASE])
    print(f"{'command':<24}{'median s':>10}{'x render --help':>18}   ({rounds} rounds)")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"{name:<24}{median:>10.3f}{median / base:>17.2f}x")


if __name__ == "__main__":
    main()
