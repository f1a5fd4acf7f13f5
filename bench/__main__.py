"""Run every benchmark module in this folder, in name order, each in its own process.

A separate process per benchmark keeps one benchmark's warm caches and peak memory out of
the next one's figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    failures = 0
    for module in sorted(Path(__file__).parent.glob("bench_*.py")):
        result = subprocess.run([sys.executable, "-m", f"bench.{module.stem}"], check=False)
        if result.returncode != 0:
            print(f"bench {module.stem}: FAILED (exit {result.returncode})")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
