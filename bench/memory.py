"""Resident memory of this process and its children, sampled in a background thread.

Rendering runs in worker processes, so a stage's peak is the sum over the whole process
tree, read from /proc (Linux) without extra dependencies.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int | None = None) -> int:
    pending, total = [root or os.getpid()], 0
    while pending:
        pid = pending.pop()
        total += _rss_bytes(pid)
        pending += _children(pid)
    return total


class RssSampler:
    """Samples the process tree's resident memory every `interval` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_rss_bytes()))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        inside = [rss for moment, rss in self.samples if start <= moment <= end]
        return max(inside, default=0)
