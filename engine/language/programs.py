"""Program files: the roles, critical medications and ladders a program's pathways share (``include:``).

A pathway may say ``include: shared.program.yaml`` (a path relative to the pathway file; one, or a list). The
program file is read like a pathway (:mod:`engine.language.source`) and checked by its own small schema (only
``title``, ``description``, ``roles``, ``ladders``, ``default_ladder``, ``medications``), so an error inside it names
that file, line and column. Its definitions are then folded into the pathway document before the pathway's own
schema runs: the pathway's definitions extend them; one name defined twice with other content is an error naming
both places (the same content twice is fine).

Program files are named ``*.program.yaml`` (or ``.yml``), so a folder of pathways can hold them and ``carepath
validate`` does not take them for pathways. An episode is pinned to the *resolved* text (:func:`resolved_text`,
the pathway with its programs folded in), so the stored text alone recompiles the plan, and a change to a program
file is a change to every pathway that includes it.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import Field, ValidationError

from engine import files
from engine.errors import Diagnostic, Finding, format_path
from engine.language.declarations import RoleSpec
from engine.language.fields import Id, Spec
from engine.language.model import MedicationsSpec, Rungs
from engine.language.model_errors import model_findings
from engine.language.positions import KeyFinding, Path, SourceMap
from engine.language.schema import load_schema, validate_document
from engine.language.source import MAX_BYTES, parse_yaml

__all__ = [
    "PROGRAM_SUFFIXES",
    "Origin",
    "ProgramSpec",
    "Resolved",
    "is_program_file",
    "load_program",
    "resolve",
    "resolved_text",
]

PROGRAM_SUFFIXES = (".program.yaml", ".program.yml")
_SHARED = ("roles", "ladders", "default_ladder", "medications")
Owner = tuple[str, SourceMap, Path]
_KINDS = {"roles": "role", "ladders": "ladder"}


class ProgramSpec(Spec):
    """A program file: what every pathway of a program shares."""

    title: str | None = Field(None, description="Human title of the program.")
    description: str | None = Field(None, description="What the program is.")
    roles: dict[Id, RoleSpec] = Field(default_factory=dict, description="Roles every including pathway has.")
    ladders: dict[Id, Rungs] = Field(default_factory=dict, description="Named escalation ladders.")
    default_ladder: Id | None = Field(None, description="Ladder used wherever `escalate` is omitted.")
    medications: MedicationsSpec | None = Field(None, description="Critical medications for reconciliation.")


def is_program_file(name: str) -> bool:
    """A program file by its name (``*.program.yaml``): never validated or registered as a pathway."""
    return os.path.basename(name).endswith(PROGRAM_SUFFIXES)


@lru_cache(maxsize=1)
def program_schema() -> dict[str, Any]:
    """The program file schema: the pathway schema's definitions of the shared keys, and nothing else."""
    full = load_schema()
    text = {"type": "string", "minLength": 1}
    properties = {key: full["properties"][key] for key in _SHARED}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"title": text, "description": text, **properties},
        "$defs": full["$defs"],
    }


@dataclass(frozen=True)
class Origin:
    """Where a folded-in part was written: a program file and the part's path in it."""

    file: str
    source_map: SourceMap
    path: Path


@dataclass
class Resolved:
    """The pathway document with its programs folded in, and where each folded part came from."""

    value: Any
    diagnostics: list[Diagnostic] = field(default_factory=list)
    origins: dict[Path, Origin] = field(default_factory=dict)
    programs: list[tuple[str, str]] = field(default_factory=list)  # (name as included, text)

    def locate(self, path: Path) -> Origin | None:
        """The origin of the part at ``path`` (or of its nearest folded-in ancestor), None for the pathway's own."""
        for end in range(len(path), 0, -1):
            found = self.origins.get(tuple(path[:end]))
            if found is not None:
                return Origin(found.file, found.source_map, (*found.path, *path[end:]))
        return None


def resolve(value: Any, source_map: SourceMap, name: str) -> Resolved:
    """Fold the programs ``value`` includes into a copy of it; problems come back as diagnostics."""
    if not isinstance(value, dict) or "include" not in value:
        return Resolved(value)
    include = value["include"]
    entries: list[tuple[Path, str]] = [(("include",), include)] if isinstance(include, str) else []
    if isinstance(include, list) and all(isinstance(i, str) for i in include):
        entries = [(("include", i), item) for i, item in enumerate(include)]
    if not entries:
        return Resolved(value)  # a wrong shape: the schema stage says so
    out = Resolved(copy.deepcopy(value))
    owners: dict[Path, Owner] = {}
    for key in _KINDS:
        own = out.value.get(key)
        for item in own if isinstance(own, dict) else {}:
            owners[(key, item)] = (name, source_map, (key, item))
    if out.value.get("default_ladder") is not None:
        owners[("default_ladder",)] = (name, source_map, ("default_ladder",))
    for i, med in enumerate(_critical(out.value)):
        if isinstance(med, dict):
            owners[("medications", str(med.get("name")))] = (name, source_map, ("medications", "critical", i))
    for at, relative in entries:
        program = _read_program(relative, name, source_map, at, out)
        if program is not None:
            _fold(out, owners, name, *program)
    return out


def load_program(path: str) -> tuple[ProgramSpec | None, list[Diagnostic]]:
    """A program file checked on its own (``carepath validate shared.program.yaml``): YAML, schema and model; the
    meaning of its parts (a ladder's roles) is checked in each pathway that includes it."""
    resolved = resolve({"include": os.path.basename(path)}, SourceMap(), path)
    if resolved.diagnostics:
        return None, sorted(resolved.diagnostics)
    return ProgramSpec.model_validate({k: v for k, v in resolved.value.items() if k != "include"}), []


def resolved_text(pathway: str, resolved: Resolved) -> str:
    """The text an including pathway is registered as: the folded document, which loads with no program file.

    It depends only on the pathway's and the programs' contents (not on the folder it was read from), so the same
    files always register as the same text, and a changed program file as other text."""
    import yaml

    document = {k: v for k, v in resolved.value.items() if k != "include"}
    header = [f"# {os.path.basename(pathway)}, resolved by carepath: the programs it includes are folded in."]
    for program, text in resolved.programs:
        header.append(f"# include: {program} (sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]})")
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
    return "\n".join(header) + "\n" + body


def _read_program(
    relative: str, name: str, source_map: SourceMap, at: Path, out: Resolved
) -> tuple[str, dict[str, Any], SourceMap] | None:
    """Read and check one program file; None (with diagnostics) when it cannot be used."""

    def problem(message: str) -> None:
        line, col = source_map.locate(at)
        out.diagnostics.append(Diagnostic(name, line, col, format_path(at), message))

    if not is_program_file(relative):
        problem(f"{relative!r} is not a program file; name it *.program.yaml")
        return None
    path = os.path.normpath(os.path.join(os.path.dirname(name), relative))
    try:
        data = files.read_bounded(path, MAX_BYTES)
    except FileNotFoundError:
        problem(f"included program file {path!r} does not exist")
        return None
    except (OSError, ValueError, TimeoutError) as exc:
        problem(f"cannot read the included program file {path!r}: {exc}")
        return None
    parsed = parse_yaml(data)
    out.programs.append((relative, parsed.text or ""))
    if parsed.problems:
        out.diagnostics += [Diagnostic(path, p.line, p.col, format_path(p.path), p.message) for p in parsed.problems]
        return None
    findings = validate_document(parsed.value, program_schema())
    if not findings:
        try:
            ProgramSpec.model_validate(parsed.value)
        except ValidationError as exc:
            findings = model_findings(exc, parsed.value)
    if findings:
        out.diagnostics += [_placed(f, parsed.source_map, path) for f in findings]
        return None
    return path, parsed.value, parsed.source_map


def _fold(
    out: Resolved,
    owners: dict[Path, Owner],
    pathway: str,
    file: str,
    program: dict[str, Any],
    source_map: SourceMap,
) -> None:
    doc = out.value
    for key, kind in _KINDS.items():
        theirs = program.get(key) or {}
        if theirs and doc.get(key) is None:
            doc[key] = {}
        mine = doc.get(key)
        if not isinstance(mine, dict):
            continue  # a wrong shape: the schema stage says so
        for item, content in theirs.items():
            here: Owner = (file, source_map, (key, item))
            if item in mine:
                if mine[item] != content:
                    _conflict(out, pathway, f"{kind} {item!r}", owners[(key, item)], here)
                continue
            mine[item] = content
            owners[(key, item)] = here
            out.origins[(key, item)] = Origin(*here)
    if program.get("default_ladder") is not None:
        here = (file, source_map, ("default_ladder",))
        if doc.get("default_ladder") is None:
            doc["default_ladder"] = program["default_ladder"]
            owners[("default_ladder",)] = here
            out.origins[("default_ladder",)] = Origin(*here)
        elif doc["default_ladder"] != program["default_ladder"]:
            _conflict(out, pathway, "default_ladder", owners[("default_ladder",)], here)
    meds = (program.get("medications") or {}).get("critical") or []
    if meds and isinstance(doc.get("medications") or {}, dict):
        doc["medications"] = doc.get("medications") or {}
        if not isinstance(doc["medications"].get("critical") or [], list):
            return
        mine_list = doc["medications"].setdefault("critical", [])
        for i, med in enumerate(meds):
            here = (file, source_map, ("medications", "critical", i))
            same = [m for m in mine_list if isinstance(m, dict) and m.get("name") == med["name"]]
            if same:
                if same[0] != med:
                    what = f"critical medication {med['name']!r}"
                    _conflict(out, pathway, what, owners[("medications", med["name"])], here)
                continue
            out.origins[("medications", "critical", len(mine_list))] = Origin(*here)
            owners[("medications", med["name"])] = here
            mine_list.append(med)


def _conflict(out: Resolved, pathway: str, what: str, first: Owner, later: Owner) -> None:
    """One name, two contents: reported at the pathway's own definition if it has one, else at the later one."""
    at, other = (first, later) if first[0] == pathway else (later, first)
    line, col = at[1].locate_key(at[2])
    o_line, o_col = other[1].locate_key(other[2])
    message = f"{what} is also defined in {other[0]}:{o_line}:{o_col} with other content; define it once or alike"
    out.diagnostics.append(Diagnostic(at[0], line, col, format_path(at[2]), message))


def _critical(doc: dict[str, Any]) -> list[Any]:
    meds = doc.get("medications")
    critical = meds.get("critical") if isinstance(meds, dict) else None
    return critical if isinstance(critical, list) else []


def _placed(finding: Finding, source_map: SourceMap, file: str) -> Diagnostic:
    where = source_map.locate_key if isinstance(finding, KeyFinding) else source_map.locate
    line, col = where(finding.path)
    return Diagnostic(file, line, col, format_path(finding.path), finding.message, finding.severity)
