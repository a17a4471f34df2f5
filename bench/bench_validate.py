"""Benchmark: validate, then validate and plan, N generated pathway files; report files per second.

The files are variations of the two seed pathways (new pathway ids, renamed stages, scaled durations, an
extra stage copied from an existing one), so no two are alike and every one of them is valid: a file that
fails to load would measure the error path, not the work a program runs, and makes the run fail.

Run from the repository root::

    python -m bench.bench_validate              # 1,000 files, best of 3
    python -m bench.bench_validate --files 200 --runs 5
    python -m bench.bench_validate --jobs 0     # one worker process per CPU
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from engine.language.loader import load_pathway
from engine.plan.build import compile_plan

__all__ = ["Runner", "generate", "main", "measure", "report", "variant"]

SEEDS = Path(__file__).resolve().parents[1] / "pathways"
MODELINE = "# yaml-language-server: $schema=../schemas/pathway.schema.json\n"
_DURATION = re.compile(r"^(\d+)([mhdw])$")
_DURATION_KEYS = {"min", "max", "default", "within", "every", "window", "for", "after", "update_every"}
_DURATION_KEYS |= {"first_contact_within", "re_engage_within", "refer_within"}


def variant(seed: dict[str, Any], index: int, rng: random.Random) -> dict[str, Any]:
    """A valid pathway derived from ``seed``: renamed, rescaled, and (every third file) with an extra stage."""
    doc = copy.deepcopy(seed)
    doc["id"] = f"{seed['id']}-{index:05d}"
    doc["version"] = 1 + index % 7
    doc["title"] = f"{seed['title']} (variant {index})"
    _scale_durations(doc, rng.choice((1, 2, 3)))
    suffix = f"v{index % 97}"
    for stage in rng.sample(doc["stages"], k=min(2, len(doc["stages"]))):
        _rename_stage(doc, stage["id"], f"{stage['id']}-{suffix}")
    if index % 3 == 0:
        _copy_stage(doc, rng)
    return doc


def _scale_durations(node: Any, factor: int, key: str | None = None) -> Any:
    """Multiply every literal duration by ``factor``: ladders stay increasing and ranges stay ordered."""
    if isinstance(node, dict):
        for k, v in node.items():
            node[k] = _scale_durations(v, factor, k)
    elif isinstance(node, list):
        return [_scale_durations(v, factor, key) for v in node]
    elif isinstance(node, str) and key in _DURATION_KEYS:
        m = _DURATION.match(node)
        if m:
            return f"{int(m[1]) * factor}{m[2]}"
    return node


def _rename_stage(doc: dict[str, Any], old: str, new: str) -> None:
    for stage in doc["stages"]:
        if stage["id"] == old:
            stage["id"] = new
    for t in doc.get("transitions", []):
        sources = t["from"]
        t["from"] = (
            [new if s == old else s for s in sources]
            if isinstance(sources, list)
            else (new if sources == old else sources)
        )
        t["to"] = new if t["to"] == old else t["to"]
        handoff = t.get("handoff") or {}
        if handoff.get("fallback") == old:
            handoff["fallback"] = new


def _copy_stage(doc: dict[str, Any], rng: random.Random) -> None:
    """Copy a non-terminal stage S to S-2: reached from S on a new event, leaving the way S leaves."""
    leaving = [s for s in doc["stages"] if not s.get("terminal")]
    original = rng.choice(leaving)
    old, new = original["id"], f"{original['id']}-2"
    clone = copy.deepcopy(original)
    clone["id"], clone["name"] = new, f"{original['name']} (second block)"
    doc["stages"].insert(doc["stages"].index(original) + 1, clone)
    event = f"bench.{old}-extended"
    doc["events"][event] = {"description": f"{original['name']} is extended into a second block."}
    copies = []
    for t in doc["transitions"]:
        sources = t["from"] if isinstance(t["from"], list) else [t["from"]]
        if old in sources:
            copies.append({**copy.deepcopy(t), "from": new})
    doc["transitions"] = [{"from": old, "to": new, "event": event}, *doc["transitions"], *copies]


def generate(directory: Path, count: int, seed: int = 2024) -> list[Path]:
    """Write ``count`` variant pathway files into ``directory``; return their paths."""
    seeds = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(SEEDS.glob("*.yaml"))]
    if not seeds:
        raise SystemExit(f"no seed pathways in {SEEDS}")
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        doc = variant(seeds[i % len(seeds)], i, rng)
        path = directory / f"{doc['id']}.yaml"
        path.write_text(MODELINE + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        paths.append(path)
    return paths


def _validate(path: Path) -> str | None:
    """Load one file; a problem message if it does not load with zero diagnostics."""
    result = load_pathway(path)
    if not result.ok or result.diagnostics:
        return f"{path.name} does not load cleanly: " + "; ".join(map(str, result.diagnostics))
    return None


def _validate_and_plan(path: Path) -> str | None:
    """Load one file and compile its plan."""
    result = load_pathway(path)
    if not result.ok:
        return f"{path.name} does not load: " + "; ".join(map(str, result.diagnostics))
    compile_plan(result.spec)
    return None


Work = Callable[[Path], str | None]


class Runner:
    """Runs work over files in this process (jobs=1) or in a pool of warm worker processes."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool:
            self.pool.shutdown()

    def run(self, work: Work, paths: Sequence[Path]) -> list[str]:
        if self.pool is None:
            results = [work(p) for p in paths]
        else:
            chunk = max(1, len(paths) // (self.jobs * 8))
            results = list(self.pool.map(work, paths, chunksize=chunk))
        return [r for r in results if r]


def measure(runner: Runner, work: Work, paths: Sequence[Path], runs: int) -> tuple[float, float]:
    """Best wall time and best CPU time (this process), in seconds, of ``runs`` passes of ``work`` over ``paths``.

    CPU time is what the work costs on a busy machine; it counts only with one process. Exits on a failing file.
    """
    runner.run(work, paths[: runner.jobs * 2])  # warm-up: imports and first-call caches
    wall = cpu = float("inf")
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        problems = runner.run(work, paths)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
        if problems:
            raise SystemExit(f"{len(problems)} generated file(s) failed, e.g. {problems[0]}")
    return wall, cpu


def report(label: str, files: int, wall: float, cpu: float, runs: int, jobs: int) -> str:
    """One line: ``validate: 60 files/s (1000 files in 16.6 s; CPU 15.9 s = 63 files/s; best of 3, 1 process)``."""
    if jobs == 1:
        return (
            f"{label}: {files / wall:,.0f} files/s ({files} files in {wall:.1f} s; "
            f"CPU {cpu:.1f} s = {files / cpu:,.0f} files/s; best of {runs}, 1 process)"
        )
    return f"{label}: {files / wall:,.0f} files/s ({files} files in {wall:.1f} s; best of {runs}, {jobs} processes)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_validate", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="number of generated pathway files (1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the best counts (3)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes; 0 means one per CPU (1)")
    args = parser.parse_args(argv)
    if args.files < 1 or args.runs < 1 or args.jobs < 0:
        parser.error("--files and --runs must be at least 1, --jobs at least 0")
    jobs = args.jobs or os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp, Runner(jobs) as runner:
        paths = generate(Path(tmp), args.files)
        python = platform.python_version()
        print(f"carepath bench: {len(paths)} generated pathways, Python {python}, {os.cpu_count()} CPUs")
        for label, work in (("validate", _validate), ("validate+plan", _validate_and_plan)):
            wall, cpu = measure(runner, work, paths, args.runs)
            print(report(label, len(paths), wall, cpu, args.runs, jobs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
