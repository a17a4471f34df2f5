"""Load a pathway file through the validation stages, stopping at the first stage that finds a problem.

Stages (each reports every problem it finds, then the pipeline stops if any is an error):

1. read: the file exists, is a file, is at most :data:`engine.language.source.MAX_BYTES` (a FIFO or device is read
   for at most :data:`engine.files.READ_TIMEOUT` seconds, so ``carepath validate`` never hangs);
2. YAML: UTF-8 text, syntax, one document, text keys, no duplicate keys, no bombs (:mod:`engine.language.source`);
   then the program files it includes, each read and checked the same way, folded in (:mod:`.programs`);
3. JSON Schema: the shape of every part (:mod:`engine.language.schema`);
4. model: :class:`engine.language.model.PathwaySpec` (what the schema cannot say: guard operators, duration values);
5. meaning: :func:`engine.language.semantics.check` (references, reachability, ladders...), warnings included.

Every problem becomes a :class:`~engine.errors.Diagnostic` placed by the source map (file as given, 1-based
line and column of the offending value; a missing field at its parent; an unexpected key at the key). Nothing
here raises for a bad file, and nothing imports Prefect: ``carepath validate`` stays fast.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError

from engine import files
from engine.errors import Diagnostic, Finding, PathwayError, format_path
from engine.language.model import PathwaySpec
from engine.language.model_errors import model_findings
from engine.language.positions import KeyFinding, SourceMap
from engine.language.programs import Resolved, is_program_file, resolve, resolved_text
from engine.language.schema import validate_document
from engine.language.source import MAX_BYTES, parse_yaml

__all__ = [
    "YAML_SUFFIXES",
    "LoadResult",
    "discover",
    "load_pathway",
    "load_pathway_text",
    "load_spec",
]

YAML_SUFFIXES = (".yaml", ".yml")

Path = tuple[str | int, ...]


@dataclass
class LoadResult:
    """What loading one pathway gave: the spec when it is valid, and every diagnostic (warnings too)."""

    path: str
    spec: PathwaySpec | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source_text: str | None = None

    @property
    def ok(self) -> bool:
        """Valid: a spec and no error (warnings never make a file invalid)."""
        return self.spec is not None and not any(d.severity == "error" for d in self.diagnostics)


def load_pathway(path: str | os.PathLike[str]) -> LoadResult:
    """Read and validate one pathway file; problems come back as diagnostics, never as exceptions."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            return _failed(name, "is a folder, not a pathway file")
        if info.st_size > MAX_BYTES:
            return _failed(name, f"file is too large ({_mb(info.st_size)}); the limit is {_mb(MAX_BYTES)}")
        data = files.read_bounded(name, MAX_BYTES)
    except FileNotFoundError:
        return _failed(name, "no such file")
    except TimeoutError:
        wait = f"{files.READ_TIMEOUT:g} s"
        return _failed(name, f"not a regular file, and it gave nothing to read within {wait} (a FIFO nobody writes?)")
    except (OSError, ValueError) as exc:  # ValueError: a name with a NUL byte
        return _failed(name, f"cannot read the file: {(getattr(exc, 'strerror', None) or str(exc)).lower()}")
    if len(data) > MAX_BYTES:  # a FIFO or device: its size is known only once read
        return _failed(name, f"file is too large (more than {_mb(MAX_BYTES)}); the limit is {_mb(MAX_BYTES)}")
    return _load(data, name)


def load_pathway_text(text: str | bytes, name: str = "<text>") -> LoadResult:
    """Validate a pathway given as text (an episode's pinned version); ``name`` is used in diagnostics."""
    return _load(text, name)


def load_spec(path: str | os.PathLike[str]) -> PathwaySpec:
    """The valid spec of ``path``, or :class:`~engine.errors.PathwayError` carrying every error."""
    result = load_pathway(path)
    if not result.ok or result.spec is None:
        raise PathwayError([d for d in result.diagnostics if d.severity == "error"])
    return result.spec


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[Diagnostic]]:
    """Files to validate: files as given, folders expanded into their ``*.yaml``/``*.yml`` (sorted, recursive,
    hidden folders and program files (``*.program.yaml``) skipped); a path that does not exist, or a folder with no
    pathway, is a diagnostic."""
    files: list[str] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        name = os.fspath(raw)
        if os.path.isdir(name):
            found = _yaml_files(name)
            if not found:
                problems.append(_at_top(name, "no pathway files (*.yaml, *.yml) in this folder"))
            files.extend(found)
        elif os.path.exists(name):
            files.append(name)
        else:
            problems.append(_at_top(name, "no such file or folder"))
    return list(dict.fromkeys(files)), problems


def _yaml_files(folder: str) -> list[str]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(root, n) for n in names if _is_pathway_file(n)]
    return sorted(os.path.normpath(f) for f in found)


def _is_pathway_file(name: str) -> bool:
    return name.endswith(YAML_SUFFIXES) and not name.startswith(".") and not is_program_file(name)


# -- the stages ---------------------------------------------------------------------------------------------------


def _load(data: str | bytes, name: str) -> LoadResult:
    parsed = _guarded(name, "YAML", lambda: parse_yaml(data))
    if isinstance(parsed, LoadResult):
        return parsed
    text = data if isinstance(data, str) else parsed.text
    if parsed.problems:
        problems = [Diagnostic(name, p.line, p.col, format_path(p.path), p.message) for p in parsed.problems]
        return LoadResult(name, None, sorted(problems), text)
    resolved = _guarded(name, "include", lambda: resolve(parsed.value, parsed.source_map, name))
    if isinstance(resolved, LoadResult):
        return resolved
    if resolved.diagnostics:
        return LoadResult(name, None, sorted(resolved.diagnostics), text)
    if resolved.programs:  # pinned as the folded document: the stored text alone recompiles the plan
        text = resolved_text(name, resolved)
    stages: list[tuple[str, Callable[[Any], tuple[Any, list[Finding]]]]] = [
        ("schema", lambda value: (value, validate_document(value))),
        ("model", _model),
        ("meaning", _meaning),
    ]
    value: Any = resolved.value
    diagnostics: list[Diagnostic] = []
    for stage, run in stages:
        outcome = _guarded(name, stage, partial(run, value))
        if isinstance(outcome, LoadResult):
            return LoadResult(name, None, sorted(diagnostics + outcome.diagnostics), text)
        value, findings = outcome
        diagnostics += _place(findings, parsed.source_map, name, resolved)
        if any(d.severity == "error" for d in diagnostics):
            return LoadResult(name, None, sorted(diagnostics), text)
    return LoadResult(name, value, sorted(diagnostics), text)


def _guarded(name: str, stage: str, run: Callable[[], Any]) -> Any:
    """Run one stage; a crash becomes a diagnostic (and a bug report), never a traceback for the designer."""
    try:
        return run()
    except Exception as exc:
        return _failed(name, f"internal error in the {stage} stage ({type(exc).__name__}: {exc}); please report it")


def _model(value: Any) -> tuple[PathwaySpec | None, list[Finding]]:
    try:
        return PathwaySpec.model_validate(value), []
    except ValidationError as exc:
        return None, model_findings(exc, value)


def _meaning(spec: PathwaySpec) -> tuple[PathwaySpec, list[Finding]]:
    try:
        from engine.language.semantics import check
    except ModuleNotFoundError as exc:  # the meaning stage is optional until engine.language.semantics exists
        if exc.name != "engine.language.semantics":
            raise
        return spec, []
    return spec, check(spec)


def _place(findings: Iterable[Finding], source_map: SourceMap, name: str, resolved: Resolved) -> list[Diagnostic]:
    """Each finding at its file and position: a part folded in from a program file is placed in that file."""
    out = []
    for finding in findings:
        origin = resolved.locate(finding.path)
        if origin and finding.severity == "warning" and len(finding.path) == 2 and finding.path[0] == "ladders":
            continue  # a program's ladder need not be used by every pathway that includes it
        file, where, path = (
            (origin.file, origin.source_map, origin.path) if origin else (name, source_map, finding.path)
        )
        line, col = where.locate_key(path) if isinstance(finding, KeyFinding) else where.locate(path)
        out.append(Diagnostic(file, line, col, format_path(path), finding.message, finding.severity))
    return out


def _failed(name: str, message: str) -> LoadResult:
    return LoadResult(name, None, [_at_top(name, message)], None)


def _at_top(name: str, message: str) -> Diagnostic:
    return Diagnostic(name, 1, 1, "$", message)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
