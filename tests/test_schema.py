"""The generated JSON Schema: complete for editors, in step with the model, and messages a designer can act on."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from engine.errors import Finding
from engine.language.loader import load_pathway_text
from engine.language.model import PathwaySpec
from engine.language.positions import KeyFinding
from engine.language.schema import PACKAGED_SCHEMA, validate_document
from engine.language.schema_build import EDITOR_SCHEMA, EXAMPLE, build_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = yaml.safe_load((ROOT / "tests" / "data" / "valid" / "minimal.yaml").read_text())


def subschemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object inside ``node``, skipping data (examples, defaults, enums)."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key in ("examples", "default", "enum", "const"):
                continue
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from subschemas(sub, f"{where}/{key}/{name}")
            else:
                yield from subschemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from subschemas(item, f"{where}/{i}")


def messages(document: Any) -> list[tuple[str, tuple[Any, ...], str]]:
    return [(type(f).__name__, f.path, f.message) for f in validate_document(document)]


def with_changes(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(MINIMAL)
    document.update(changes)
    return document


def test_committed_schema_files_are_the_generated_one() -> None:
    """Regenerate with ``python -m engine.language.schema_build`` when the model changes."""
    assert EDITOR_SCHEMA == ROOT / "schemas" / "pathway.schema.json"
    assert EDITOR_SCHEMA.read_text(encoding="utf-8") == schema_text()
    assert PACKAGED_SCHEMA.read_text(encoding="utf-8") == schema_text(), "validation loads the packaged copy"
    assert json.loads(schema_text()) == build_schema()
    assert schema_text().endswith("}\n")


def test_schema_is_draft_2020_12_with_identity_and_examples() -> None:
    schema = build_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"] and schema["description"]
    assert schema["examples"] == [EXAMPLE]


def test_no_object_accepts_an_unchecked_key() -> None:
    """Fixed-field objects forbid extras; maps check their keys (``propertyNames``) and their values."""
    objects = [(w, s) for w, s in subschemas(build_schema()) if s.get("type") == "object"]
    assert len(objects) > 25
    for where, schema in objects:
        assert "patternProperties" not in schema, where
        if "properties" in schema:
            assert schema.get("additionalProperties") is False, where
        else:
            assert isinstance(schema.get("additionalProperties"), dict), where
            assert schema.get("propertyNames"), where


def test_every_property_has_a_description_for_hover_help() -> None:
    properties = [
        (f"{where}/{name}", prop)
        for where, schema in subschemas(build_schema())
        for name, prop in schema.get("properties", {}).items()
    ]
    assert len(properties) > 100
    missing = [where for where, prop in properties if not prop.get("description")]
    assert missing == []


def test_build_schema_returns_a_fresh_copy() -> None:
    build_schema()["properties"].clear()
    assert build_schema()["properties"]


def test_the_examples_are_valid_pathways() -> None:
    assert validate_document(EXAMPLE) == []
    result = load_pathway_text(yaml.safe_dump(EXAMPLE), "example.yaml")
    assert result.ok, [str(d) for d in result.diagnostics]
    assert validate_document(MINIMAL) == []


def test_a_missing_field_is_reported_at_its_parent() -> None:
    document = copy.deepcopy(MINIMAL)
    del document["stages"][1]["name"]
    del document["title"]
    assert messages(document) == [
        ("Finding", ("stages", 1), "missing required field 'name'"),
        ("Finding", (), "missing required field 'title'"),
    ]


def test_an_unexpected_key_is_reported_at_the_key_with_a_suggestion() -> None:
    document = copy.deepcopy(MINIMAL)
    document["stages"][0]["expected_duraton"] = document["stages"][0].pop("expected_duration")
    document["colour"] = "blue"
    assert messages(document) == [
        ("KeyFinding", ("colour",), "unexpected field 'colour'"),
        (
            "KeyFinding",
            ("stages", 0, "expected_duraton"),
            "unexpected field 'expected_duraton' (did you mean 'expected_duration'?)",
        ),
    ]


def test_patterns_say_what_they_expect() -> None:
    document = copy.deepcopy(MINIMAL)
    document["stages"][0]["expected_duration"]["max"] = "ten days"
    document["stages"][1]["id"] = "Bad Id"
    document["stages"][0]["on_entry"][0]["done_on"] = "screening"
    document["facts"]["Insurance"] = document["facts"].pop("insurance")
    assert messages(document) == [
        (
            "KeyFinding",
            ("facts", "Insurance"),
            "'Insurance' is not a valid name (lowercase letters, digits, underscores; starting with a letter)",
        ),
        ("Finding", ("stages", 0, "expected_duration", "max"), "'ten days' is not a duration (e.g. 10d)"),
        (
            "Finding",
            ("stages", 0, "on_entry", 0, "done_on"),
            "'screening' is not a valid event name (lowercase words joined by dots, e.g. detox.completed)",
        ),
        (
            "Finding",
            ("stages", 1, "id"),
            "'Bad Id' is not a valid id (lowercase letters, digits, dashes; starting with a letter)",
        ),
    ]


def test_enums_list_the_choices_and_suggest_the_closest() -> None:
    document = with_changes(asam_edition=5)
    document["transitions"][0]["handoff"]["steps"][0]["kind"] = "acepted"
    document["social_needs"] = {"houseing": {"refer_within": "3d", "owner": "care-coordinator"}}
    kinds = "'accepted', 'scheduled', 'visit-kept', 'outcome-returned'"
    needs = "'housing', 'transport', 'employment', 'legal', 'benefits', 'identification', 'food'"
    assert sorted(messages(document)) == sorted(
        [  # the loader sorts them by line; here, any order
            ("Finding", ("asam_edition",), "5 is not one of 3, 4"),
            (
                "Finding",
                ("transitions", 0, "handoff", "steps", 0, "kind"),
                f"'acepted' is not one of {kinds} (did you mean 'accepted'?)",
            ),
            ("KeyFinding", ("social_needs", "houseing"), f"'houseing' is not one of {needs} (did you mean 'housing'?)"),
        ]
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"version": "one"}, ((("version",), "expected a whole number, got the string 'one'"),)),
        ({"version": 0}, ((("version",), "0 is less than the minimum 1"),)),
        ({"title": None}, ((("title",), "expected a string, got an empty value"),)),
        ({"title": 12}, ((("title",), "expected a string, got the number 12 (quote it)"),)),
        ({"roles": ["care-coordinator"]}, ((("roles",), "expected a mapping, got a list"),)),
        ({"roles": {}}, ((("roles",), "must not be empty"),)),
        ({"stages": "detox"}, ((("stages",), "expected a list, got the string 'detox'"),)),
    ],
)
def test_types_and_sizes(changes: dict[str, Any], expected: tuple[tuple[tuple[Any, ...], str], ...]) -> None:
    assert [(f.path, f.message) for f in validate_document(with_changes(**changes))] == list(expected)


def test_a_nullable_field_is_explained_by_the_branch_the_designer_meant() -> None:
    document = copy.deepcopy(MINIMAL)
    document["stages"][1]["expected_duration"] = 5
    document["stages"][0]["expected_duration"]["max"] = 14
    document["transitions"][1]["from"] = {"stage": "iop"}
    assert messages(document) == [
        ("Finding", ("stages", 0, "expected_duration", "max"), "14 is not a duration (e.g. 10d)"),
        ("Finding", ("stages", 1, "expected_duration"), "expected a mapping, got the number 5"),
        ("Finding", ("transitions", 1, "from"), "expected a string or a list, got a mapping"),
    ]


def test_a_guard_is_explained_by_the_form_it_uses() -> None:
    document = copy.deepcopy(MINIMAL)
    document["transitions"][0]["when"] = {"not": {"fact": "insurance", "equals": "medicaid", "colour": 1}}
    document["transitions"][1]["when"] = {"facts": "insurance"}
    assert messages(document) == [
        ("KeyFinding", ("transitions", 0, "when", "not", "colour"), "unexpected field 'colour'"),
        (
            "Finding",
            ("transitions", 1, "when"),
            "expected one of the fields 'fact', 'all', 'any', 'not' or 'since' (did you mean 'fact'?)",
        ),
    ]


def test_every_problem_is_reported_not_only_the_first() -> None:
    document = copy.deepcopy(MINIMAL)
    for stage in document["stages"]:
        stage["id"] = stage["id"].upper()
    assert len(validate_document(document)) == 3


def test_a_document_that_is_not_a_mapping() -> None:
    assert messages(["a"]) == [("Finding", (), "expected a mapping, got a list")]
    assert messages(None) == [("Finding", (), "expected a mapping, got an empty value")]


def test_messages_are_short_lowercase_and_without_a_final_period() -> None:
    document = with_changes(version="x", asam_edition=9, title=None, roles=[], stages=[{"id": "A"}], colour=1)
    found = validate_document(document)
    assert len(found) >= 6
    for finding in found:
        assert isinstance(finding, Finding)
        assert finding.message[0] == finding.message[0].lower() or finding.message[0] in "'0123456789"
        assert not finding.message.endswith(".")
        assert len(finding.message) < 160


def test_key_findings_are_only_about_keys() -> None:
    document = with_changes(colour=1)
    (finding,) = validate_document(document)
    assert isinstance(finding, KeyFinding)
    assert finding.path == ("colour",)


def test_the_model_and_schema_agree_on_the_example() -> None:
    PathwaySpec.model_validate(EXAMPLE)
