"""What a process tree costs, read from ``/proc`` (Linux) by a sampling thread: CPU seconds, resident memory and
the processes it started, for :mod:`bench.bench_caseload`.

- **CPU** of a tree at one instant is the sum, over its live processes, of their own user+system time and of
  their reaped children's (``cutime``/``cstime``): a flow-run process that ended and was waited for by its
  parent (the serving process) is counted through that parent. Orphans (re-parented to init after a kill -9) leave
  the tree; the bench adds a tree's last sample before it kills it (:meth:`Sampler.retire`).
- **Memory**: the sum of the live processes' proportional set size (PSS: a page shared by forked processes
  counted once in all), sampled; the peak is kept.
- **Processes started**: every pid seen in the tree, by kind from its command line (``flow-run`` for
  ``python -m prefect.engine``, Prefect's process per deployment run). Sampling every ``every`` seconds misses only
  processes that live less than that; a flow-run process imports Prefect first (over a second).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sample", "Sampler", "classify", "tree_cpu_seconds"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # after the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14), counting from state = 0
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / _TICK
    reaped = (int(fields[13]) + int(fields[14])) / _TICK
    return ppid, own, reaped


def _memory(pid: int) -> int:
    """Bytes ``pid`` holds: its proportional set size (shared pages split between their sharers, so forked
    processes are not counted twice), else its resident set."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def classify(cmdline: str) -> str:
    """``flow-run``, ``prefect-server``, ``carepath-up`` or ``other``, from a process's command line."""
    if "prefect.engine" in cmdline:
        return "flow-run"
    if "prefect" in cmdline and "server" in cmdline and "start" in cmdline:
        return "prefect-server"
    if "engine up" in cmdline or "carepath up" in cmdline:
        return "carepath-up"
    return "other"


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                out.setdefault(stat[0], []).append(int(entry))
    return out


def _tree(roots: list[int], children: dict[int, list[int]]) -> list[int]:
    seen, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU seconds of the trees under ``roots`` right now (see the module docstring)."""
    total = 0.0
    for pid in _tree(roots, _children()):
        stat = _stat(pid)
        if stat is not None:
            total += stat[1] + stat[2]
    return total


@dataclass
class Sample:
    """The tree at one instant."""

    at: float
    cpu: float
    rss: int
    processes: int


@dataclass
class Sampler:
    """Samples the trees under ``roots()`` every ``every`` seconds in a daemon thread until :meth:`stop`."""

    roots: Callable[[], list[int]]
    every: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    started: dict[int, str] = field(default_factory=dict)
    retired_cpu: float = 0.0
    peak_rss: int = 0
    _last: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="caseload-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def sample(self) -> Sample:
        """Take one sample now (also called by the thread); the roots themselves are counted as started too."""
        children = _children()
        per_root: dict[int, float] = {}
        rss = count = 0
        for root in [pid for pid in self.roots() if pid > 0]:
            cpu = 0.0
            for pid in _tree([root], children):
                stat = _stat(pid)
                if stat is None:
                    continue
                cpu += stat[1] + stat[2]
                rss += _memory(pid)
                count += 1
                known = self.started.get(pid)
                if known is None or (pid != root and known in ("carepath-up", "other")):
                    self.started[pid] = classify(_cmdline(pid))  # a fork shows its parent's command until exec
            per_root[root] = cpu
        with self._lock:
            self._last = {root: max(cpu, self._last.get(root, 0.0)) for root, cpu in per_root.items()}
            found = Sample(time.time(), self.retired_cpu + sum(self._last.values()), rss, count)
            self.samples.append(found)
            self.peak_rss = max(self.peak_rss, rss)
        return found

    def retire(self, root: int) -> None:
        """The tree under ``root`` is about to be killed: keep its CPU so far (later samples no longer see it)."""
        self.sample()
        with self._lock:
            self.retired_cpu += self._last.pop(root, 0.0)

    def cpu(self) -> float:
        """CPU seconds of every tree sampled so far, the killed ones included (as of the last sample)."""
        with self._lock:
            return self.retired_cpu + sum(self._last.values())

    def kinds(self) -> Counter[str]:
        """Processes seen, by kind."""
        with self._lock:
            return Counter(self.started.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sample()
            except Exception as exc:  # a process vanished mid-read, /proc unreadable: skip this one
                print(f"sampler: {type(exc).__name__}: {exc}", flush=True)
