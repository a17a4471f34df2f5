"""The roster: which people an escalation to a role reaches, as apprise URLs kept outside the pathway.

A pathway names roles (``care-coordinator``, ``supervisor``); a program's roster file maps each role to contacts,
each an apprise URL (``mailto://``, ``json://``, ``slack://``, ...) with an optional label, and may name a
``fallback`` role used when a role has no contact of its own::

    roles:
      care-coordinator:
        contacts:
          - url: mailto://carepath:${SMTP_PASSWORD}@mail.example.org?to=coordinators@example.org
            label: Coordinators' shared inbox
      supervisor:
        contacts: [json://127.0.0.1:8080/escalations]
      prescriber:
        fallback: supervisor

Loading runs in stages and stops between them, each reporting every problem as a
:class:`~engine.errors.Diagnostic` (``roster.yaml:4:11: error: $.roles.supervisor.contacts[0].url: ...``): YAML
(:mod:`engine.language.source`), shape (pydantic, unknown keys forbidden), meaning (apprise can read every URL,
fallbacks name roles and form no cycle, every role reaches someone). ``${NAME}`` in a URL is taken from the environment
mapping the caller passes, so tokens need not be written in the file.

URLs carry secrets (passwords, tokens, webhook paths). They are never shown: :attr:`Contact.redacted` is the
form for screens and logs, and apprise's own log records (which print raw URLs) are caught by
:class:`~engine.notify.apprise_io.AppriseLog` while Carepath talks to apprise (:mod:`engine.notify.apprise_io`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from engine import files
from engine.errors import CarepathError, Diagnostic, format_path
from engine.language.fields import ID_PATTERN
from engine.language.positions import SourceMap
from engine.language.source import MAX_BYTES, parse_yaml
from engine.language.suggest import hint
from engine.notify.apprise_io import mask_raw, plugin_for, redact_url, schemes

__all__ = [
    "ROSTER_ENV",
    "Contact",
    "ContactSpec",
    "RoleRosterSpec",
    "Roster",
    "RosterError",
    "RosterSpec",
    "load_roster",
    "parse_roster",
    "roster_path",
]

#: Environment variable naming the roster file when no ``--roster`` option is given.
ROSTER_ENV = "CAREPATH_ROSTER"

DocPath = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RosterError(CarepathError):
    """A roster file cannot be used; ``diagnostics`` holds every problem of the first failing stage, sorted."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


# -- the file's shape ---------------------------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _shorthand(value: Any) -> Any:
    """A contact written as a bare URL string means ``{url: ...}``."""
    return {"url": value} if isinstance(value, str) else value


class ContactSpec(_Spec):
    """One way to reach a role: an apprise URL, and a label people recognise it by."""

    url: str = Field(min_length=1)
    label: str | None = None


class RoleRosterSpec(_Spec):
    """The contacts of one role, and the role to alert instead when it has none."""

    contacts: list[Annotated[ContactSpec, BeforeValidator(_shorthand)]] = []
    fallback: Annotated[str, Field(pattern=ID_PATTERN)] | None = None


class RosterSpec(_Spec):
    """A roster file: role id -> contacts."""

    roles: dict[Annotated[str, Field(pattern=ID_PATTERN)], RoleRosterSpec] = Field(min_length=1)


_FIELDS: dict[int, list[str]] = {
    0: list(RosterSpec.model_fields),
    2: list(RoleRosterSpec.model_fields),
    4: list(ContactSpec.model_fields),
}


# -- what callers use ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """A contact of ``role`` (the ``index``-th in the roster); ``url`` is secret: show :attr:`redacted`."""

    role: str
    index: int
    url: str = field(repr=False)
    label: str | None = None

    @cached_property
    def redacted(self) -> str:
        """The URL with passwords, tokens, query and webhook paths masked: safe for screens and logs."""
        return redact_url(self.url)

    @property
    def key(self) -> str:
        """Stable name of this contact within a roster, e.g. ``supervisor[0]``."""
        return f"{self.role}[{self.index}]"

    def __str__(self) -> str:
        return f"{self.label} <{self.redacted}>" if self.label else self.redacted


@dataclass(frozen=True)
class Roster:
    """Roles and their contacts, loaded and checked; ``file`` is where it came from."""

    file: str
    contacts: Mapping[str, tuple[Contact, ...]]
    fallbacks: Mapping[str, str] = field(default_factory=dict)

    def roles(self) -> list[str]:
        """Every role the roster names, in file order."""
        return list(self.contacts)

    def contacts_for(self, role: str) -> list[Contact]:
        """The role's contacts; if it has none, its fallback's (followed, never round a cycle); else ``[]``."""
        seen: set[str] = set()
        current: str | None = role
        while current is not None and current not in seen:
            seen.add(current)
            found = self.contacts.get(current, ())
            if found:
                return list(found)
            current = self.fallbacks.get(current)
        return []

    def missing(self, roles: Iterable[str]) -> list[str]:
        """The roles (e.g. a pathway's) an escalation could not reach with this roster, in the order given."""
        return [role for role in dict.fromkeys(roles) if not self.contacts_for(role)]


def roster_path(option: str | None, environ: Mapping[str, str]) -> Path | None:
    """The roster to use: ``--roster`` if given, else ``$CAREPATH_ROSTER``, else None (no one is notified)."""
    chosen = option or environ.get(ROSTER_ENV)
    return Path(chosen) if chosen else None


def load_roster(path: str | Path, *, env: Mapping[str, str] | None = None) -> Roster:
    """Read and check a roster file; raises :class:`RosterError` with every problem found."""
    name = str(path)
    try:
        data = files.read_bounded(name, MAX_BYTES)
    except TimeoutError as exc:
        why = f"not a regular file, and it gave nothing to read within {files.READ_TIMEOUT:g} s"
        raise RosterError([Diagnostic(name, 1, 1, "$", f"cannot read the roster: {why}")]) from exc
    except OSError as exc:
        raise RosterError([Diagnostic(name, 1, 1, "$", f"cannot read the roster: {exc.strerror or exc}")]) from exc
    return parse_roster(data, file=name, env=env)


def parse_roster(source: str | bytes, *, file: str = "roster.yaml", env: Mapping[str, str] | None = None) -> Roster:
    """Check roster text in stages (YAML, shape, meaning) and build the :class:`Roster`; raises :class:`RosterError`.

    ``env`` supplies ``${NAME}`` references in URLs (pass ``os.environ``); with none, a reference is an error.
    """
    parsed = parse_yaml(source)
    if parsed.problems:
        raise RosterError([Diagnostic(file, p.line, p.col, format_path(p.path), p.message) for p in parsed.problems])
    where = _Locator(file, parsed.source_map)
    if not isinstance(parsed.value, dict):
        raise RosterError([where.at((), f"expected a mapping with 'roles', got {_kind(parsed.value)}")])
    try:
        spec = RosterSpec.model_validate(parsed.value)
    except ValidationError as exc:
        raise RosterError([_shape_problem(where, error) for error in exc.errors()]) from None
    return _build(spec, where, env or {})


# -- stage 3: meaning -----------------------------------------------------------------------------------------------


def _build(spec: RosterSpec, where: _Locator, env: Mapping[str, str]) -> Roster:
    problems: list[Diagnostic] = []
    contacts: dict[str, tuple[Contact, ...]] = {}
    for role, entry in spec.roles.items():
        found = []
        for index, contact in enumerate(entry.contacts):
            path: DocPath = ("roles", role, "contacts", index, "url")
            url, missing = _expand(contact.url, env)
            if missing:
                names = ", ".join(f"${{{n}}}" for n in missing)
                problems.append(where.at(path, f"environment variable {names} is not set"))
                continue
            problem = _url_problem(url, contact.url)
            if problem:
                problems.append(where.at(path, problem))
                continue
            found.append(Contact(role=role, index=index, url=url, label=contact.label))
        contacts[role] = tuple(found)
    fallbacks = {role: entry.fallback for role, entry in spec.roles.items() if entry.fallback is not None}
    problems += _fallback_problems(spec, fallbacks, where)
    if problems:
        raise RosterError(problems)
    return Roster(file=where.file, contacts=contacts, fallbacks=fallbacks)


def _fallback_problems(spec: RosterSpec, fallbacks: dict[str, str], where: _Locator) -> list[Diagnostic]:
    problems = []
    roles = list(spec.roles)
    for role, target in fallbacks.items():
        if target not in spec.roles:
            message = f"fallback '{target}' is not a role in this roster{hint(target, roles)}"
            problems.append(where.at(("roles", role, "fallback"), message))
    for cycle in _cycles(roles, fallbacks):
        lines = ", ".join(str(where.line(("roles", role, "fallback"))) for role in cycle)
        shown = " -> ".join([*cycle, cycle[0]])
        plural = "s" if len(cycle) > 1 else ""
        problems.append(where.at(("roles", cycle[0], "fallback"), f"fallback cycle {shown} (line{plural} {lines})"))
    for role, entry in spec.roles.items():
        if not entry.contacts and entry.fallback is None:
            message = f"role '{role}' has no contacts and no fallback; an escalation would reach nobody"
            problems.append(where.at(("roles", role), message, key=True))
    return problems


def _cycles(roles: list[str], fallbacks: Mapping[str, str]) -> list[list[str]]:
    """Each fallback cycle once, starting at its role that comes first in the file (a role has one fallback)."""
    cycles: list[list[str]] = []
    settled: set[str] = set()
    for start in roles:
        walk: list[str] = []
        role: str | None = start
        while role is not None and role not in settled and role not in walk:
            walk.append(role)
            role = fallbacks.get(role)
        if role is not None and role in walk:
            cycle = walk[walk.index(role) :]
            first = cycle.index(min(cycle, key=roles.index))
            cycles.append(cycle[first:] + cycle[:first])
        settled.update(walk)
    return cycles


def _expand(url: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    missing = [name for name in _ENV_REF.findall(url) if name not in env]
    if missing:
        return url, list(dict.fromkeys(missing))
    return _ENV_REF.sub(lambda m: env[m.group(1)], url), []


def _url_problem(url: str, written: str) -> str | None:
    """Why apprise cannot use ``url`` (None if it can); the message shows ``written`` with secrets masked."""
    shown = repr(mask_raw(written))
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if plugin_for(url) is not None:
        return None
    known = schemes()
    if not scheme:
        return f"{shown} is not an apprise URL (expected scheme://..., e.g. mailto://, json://, slack://)"
    if scheme not in known:
        return f"{shown} is not an apprise URL: unknown scheme '{scheme}'{hint(scheme, known, 0.75)}"
    return f"{shown} is not an apprise URL: apprise cannot read it as a {scheme}:// URL"


# -- placing problems ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Locator:
    file: str
    source_map: SourceMap

    def at(self, path: DocPath, message: str, *, key: bool = False) -> Diagnostic:
        line, col = self.source_map.locate_key(path) if key else self.source_map.locate(path)
        return Diagnostic(self.file, line, col, format_path(path), message)

    def line(self, path: DocPath) -> int:
        return self.source_map.locate(path)[0]


def _shape_problem(where: _Locator, error: Any) -> Diagnostic:
    """One pydantic error as a designer-facing diagnostic at the offending value (missing key: its parent)."""
    loc: DocPath = tuple(error["loc"])
    kind, value = error["type"], error.get("input")
    if loc and loc[-1] == "[key]":
        path = loc[:-1]
        return where.at(
            path, f"role id {path[-1]!r} must be lowercase letters, digits and '-' (e.g. care-coordinator)", key=True
        )
    if kind == "missing":
        return where.at(loc[:-1], f"missing required field '{loc[-1]}'")
    if kind == "extra_forbidden":
        known = _FIELDS.get(len(loc) - 1, [])
        return where.at(loc, f"unexpected field '{loc[-1]}'{hint(str(loc[-1]), known)}", key=True)
    if kind == "string_pattern_mismatch":
        return where.at(loc, f"{value!r} is not a role id (lowercase letters, digits and '-', e.g. supervisor)")
    if kind == "model_type" and len(loc) == 2 and value is None:
        return where.at(loc, f"role '{loc[1]}' is empty; give it contacts or a fallback", key=True)
    if kind == "model_type" and len(loc) == 4:
        return where.at(loc, f"expected a URL or a mapping with 'url' (and 'label'), got {_kind(value)}")
    if kind in ("string_type", "model_type", "model_attributes_type", "dict_type", "list_type"):
        wanted = {"string_type": "text", "list_type": "a list"}.get(kind, "a mapping")
        return where.at(loc, f"expected {wanted}, got {_kind(value)}")
    if kind in ("too_short", "string_too_short"):
        return where.at(loc, "must not be empty")
    return where.at(loc, str(error["msg"]))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return "a list" if isinstance(value, list) else "a mapping"
