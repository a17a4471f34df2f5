"""Validation against the pathway JSON Schema (Draft 2020-12): stage 2 of loading a pathway.

The schema is the committed file beside this module (``pathway.schema.json``, generated from the model by
:mod:`engine.language.schema_build`), so validating a document does not depend on the model.
:func:`validate_document` reports every schema error, each as one short :class:`~engine.errors.Finding` built
from the error's validator keyword (never from jsonschema's message text).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import Finding
from engine.language.durations import months_problem
from engine.language.positions import KeyFinding
from engine.language.suggest import hint as did_you_mean

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

__all__ = ["PACKAGED_SCHEMA", "SCHEMA_ID", "load_schema", "validate_document"]

#: The schema validation loads, shipped with the package (``schemas/pathway.schema.json`` is the editors' copy).
PACKAGED_SCHEMA = Path(__file__).resolve().parent / "pathway.schema.json"
SCHEMA_ID = "urn:carepath:schema:pathway"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The committed schema (read once)."""
    loaded: dict[str, Any] = json.loads(PACKAGED_SCHEMA.read_text(encoding="utf-8"))
    return loaded


def _validator(schema: dict[str, Any] | None = None) -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # ~0.1 s to import; only invalid documents need it

    return Draft202012Validator(schema or load_schema())


def validate_document(value: Any, schema: dict[str, Any] | None = None) -> list[Finding]:
    """Every schema problem of a parsed document, one finding each, in the order jsonschema meets them.

    ``schema`` defaults to the pathway schema; another (a program file's) must share its ``$defs``."""
    schema = schema or load_schema()
    if _fast_valid(value, schema):
        return []
    out: list[Finding] = []
    seen: set[tuple[type, tuple[Any, ...], str]] = set()
    for error in _validator(schema).iter_errors(value):
        for finding in _explain(error):
            key = (type(finding), finding.path, finding.message)
            if key not in seen:
                seen.add(key)
                out.append(finding)
    return out


# -- a fast yes/no for valid documents ------------------------------------------------------------------------

# jsonschema spends ~20 ms on a seed pathway (it builds an object per keyword visited); valid files are the
# common case, so they take this short interpreter of the keywords the schema uses (~1 ms), and only a document
# it rejects, or one whose schema uses a keyword it does not know, goes through jsonschema for the messages.
# A property test keeps the two in agreement.

_IGNORED = frozenset({"title", "description", "examples", "default", "x-error", "$schema", "$id", "$defs"})
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


class _Unsure(Exception):
    """The fast check met a keyword it does not implement; jsonschema decides."""


def _fast_valid(value: Any, schema: dict[str, Any] | None = None) -> bool:
    try:
        return _fits(value, schema or load_schema())
    except (_Unsure, KeyError, RecursionError):  # an unknown keyword or type name: let jsonschema decide
        return False


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    for keyword, expected in schema.items():
        if keyword in _IGNORED:
            continue
        if keyword == "type":
            if not (_TYPES[expected](value) if isinstance(expected, str) else any(_TYPES[t](value) for t in expected)):
                return False
        elif keyword == "$ref":
            if not _fits(value, _resolve(schema)):
                return False
        elif keyword == "properties":
            if isinstance(value, dict) and not all(_fits(value[k], sub) for k, sub in expected.items() if k in value):
                return False
        elif keyword == "additionalProperties":
            if isinstance(value, dict):
                known = schema.get("properties", {})
                extra = [k for k in value if k not in known]
                if expected is False and extra:
                    return False
                if isinstance(expected, dict) and not all(_fits(value[k], expected) for k in extra):
                    return False
        elif keyword == "propertyNames":
            if isinstance(value, dict) and not all(_fits(k, expected) for k in value):
                return False
        elif keyword == "required":
            if isinstance(value, dict) and any(k not in value for k in expected):
                return False
        elif keyword == "items":
            if isinstance(value, list) and not all(_fits(item, expected) for item in value):
                return False
        elif keyword == "anyOf":
            if not any(_fits(value, branch) for branch in expected):
                return False
        elif keyword == "enum":
            if not any(_same(value, choice) for choice in expected):
                return False
        elif keyword == "const":
            if not _same(value, expected):
                return False
        elif keyword == "pattern":
            if isinstance(value, str) and not _regex(expected).search(value):
                return False
        elif keyword in ("minItems", "minProperties", "minLength"):
            kind = {"minItems": list, "minProperties": dict, "minLength": str}[keyword]
            if isinstance(value, kind) and len(value) < expected:
                return False
        elif keyword == "minimum":
            if _TYPES["number"](value) and value < expected:
                return False
        else:
            raise _Unsure(keyword)
    return True


def _same(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema sees it: ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) != isinstance(b, str):
        return False
    return bool(a == b)


@lru_cache(maxsize=64)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# -- one error -> findings, by validator keyword --------------------------------------------------------------


def _explain(error: ValidationError) -> list[Finding]:
    path = tuple(error.absolute_path)
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if "propertyNames" in error.absolute_schema_path:
        # jsonschema checks a key as if it were a value at the mapping's own path; put it at the key.
        return [KeyFinding((*path, instance), _value_message(error, schema, instance))]
    if keyword in ("anyOf", "oneOf"):
        return _explain_any(error)
    if keyword == "required":
        return [
            Finding(path, f"missing required field '{name}'") for name in error.validator_value if name not in instance
        ]
    if keyword == "additionalProperties":
        known = list(schema.get("properties", {}))
        return [
            KeyFinding(
                (*path, key), f"unexpected field '{key}'{did_you_mean(key, known) or _comma_hint(instance, key)}"
            )
            for key in instance
            if key not in known
        ]
    return [Finding(path, _value_message(error, schema, instance))]


def _comma_hint(mapping: dict[str, Any], key: str) -> str:
    """A key with no value right after a text (``{ description: Call, then write }``) is most often the rest of
    that text, cut by an unquoted comma in a flow mapping."""
    keys = list(mapping)
    before = keys[keys.index(key) - 1] if keys.index(key) else None
    if mapping[key] is not None or before is None or not isinstance(mapping[before], str):
        return ""
    return f"; if it is the rest of the {before}, quote the {before}: a comma inside {{ }} ends the value"


def _value_message(error: ValidationError, schema: dict[str, Any], instance: Any) -> str:
    keyword, expected = error.validator, error.validator_value
    if keyword == "pattern":
        hint = schema.get("x-error")
        if hint and (months := months_problem(instance)):
            return months
        return f"{_show(instance)} {hint}" if hint else f"{_show(instance)} does not match {expected}"
    if keyword == "enum":
        choices = ", ".join(_show(choice) for choice in expected)
        close = did_you_mean(instance, [c for c in expected if isinstance(c, str)]) if isinstance(instance, str) else ""
        return f"{_show(instance)} is not one of {choices}{close}"
    if keyword == "const":
        return f"expected {_show(expected)}, got {_show(instance)}"
    if keyword == "type":
        return _type_message(instance, expected, schema)
    if keyword in ("minItems", "minProperties"):
        if expected == 1:
            return "must not be empty"
        return f"needs at least {expected} {'items' if keyword == 'minItems' else 'entries'}"
    if keyword == "minimum":
        return f"{_show(instance)} is less than the minimum {expected}"
    if keyword == "maximum":
        return f"{_show(instance)} is more than the maximum {expected}"
    if keyword == "minLength":
        return "must not be empty" if expected == 1 else f"needs at least {expected} characters"
    return error.message


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _type_message(instance: Any, expected: str | list[str], schema: dict[str, Any]) -> str:
    hint = schema.get("x-error")
    if hint and instance is not None and not isinstance(instance, dict | list):
        return f"{_show(instance)} {hint}"
    wanted = [expected] if isinstance(expected, str) else list(expected)
    quote = " (quote it)" if wanted == ["string"] and isinstance(instance, bool | int | float) else ""
    return f"expected {_join([_TYPE_NAMES.get(t, t) for t in wanted])}, got {_got(instance)}{quote}"


def _explain_any(error: ValidationError) -> list[Finding]:
    """Explain a failed ``anyOf`` (a nullable field, a guard, ``from``) by the branch the designer meant."""
    instance, branches = error.instance, error.validator_value
    by_branch: dict[int, list[ValidationError]] = {i: [] for i in range(len(branches))}
    for sub in error.context or ():
        by_branch[int(sub.relative_schema_path[0])].append(sub)
    resolved = [_resolve(branch) for branch in branches]
    fits = [i for i, branch in enumerate(resolved) if _type_fits(instance, branch)]
    if not fits:
        meant = [i for i, branch in enumerate(resolved) if branch.get("type") != "null"]
        if len(meant) == 1:
            return _explain_all(by_branch[meant[0]])
        wanted = [_TYPE_NAMES.get(str(resolved[i].get("type")), "a value") for i in range(len(branches))]
        if "a whole number" in wanted and "a number" in wanted:
            wanted.remove("a whole number")
        return [
            Finding(tuple(error.absolute_path), f"expected {_join(list(dict.fromkeys(wanted)))}, got {_got(instance)}")
        ]
    if len(fits) > 1 and isinstance(instance, dict):
        named = [i for i in fits if set(instance) & set(resolved[i].get("properties", {}))]
        if not named:
            keys = [name for i in fits for name in resolved[i].get("required", [])[:1]]
            close = next((found for key in instance if (found := did_you_mean(key, keys))), "")
            message = f"expected one of the fields {_join([repr(k) for k in keys])}{close}"
            return [Finding(tuple(error.absolute_path), message)]
        fits = named
    best = min(fits, key=lambda i: (_structural(by_branch[i]), len(by_branch[i]), i))
    return _explain_all(by_branch[best])


def _explain_all(errors: list[ValidationError]) -> list[Finding]:
    return [finding for sub in errors for finding in _explain(sub)]


def _structural(errors: list[ValidationError]) -> int:
    """How badly a branch's own fields miss the instance (missing or unexpected keys right at it)."""
    return sum(1 for e in errors if not e.relative_path and e.validator in ("required", "additionalProperties"))


def _resolve(schema: Any) -> dict[str, Any]:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/$defs/"):
        return load_schema()["$defs"].get(schema["$ref"].removeprefix("#/$defs/"), {})
    return schema if isinstance(schema, dict) else {}


def _type_fits(instance: Any, schema: dict[str, Any]) -> bool:
    wanted = schema.get("type")
    if wanted is None:
        return True
    return _TYPES[wanted](instance) if isinstance(wanted, str) else any(_TYPES[t](instance) for t in wanted)


# -- wording ----------------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as a designer wrote it: strings quoted (and cut short), YAML words for booleans and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _got(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {_show(value)}"
    if isinstance(value, int | float):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    return _show(value)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
