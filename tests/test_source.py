"""YAML -> plain values + source map: positions, scalar typing, and a clean problem for every bad input."""

from __future__ import annotations

import time

import pytest
import yaml

from engine.errors import Finding
from engine.language.positions import KeyFinding, SourceProblem
from engine.language.source import MAX_NODES, parse_yaml

DOC = """\
# a comment
id: detox
stages:
  - id: a
    expected_duration: {min: 3d, max: 14d}
  - id: b
when:
  in: [x, y]
"""


def problems(text: str | bytes, **limits: int) -> list[tuple[int, int, str]]:
    return [(p.line, p.col, p.message) for p in parse_yaml(text, **limits).problems]


def test_values_are_plain_and_positions_are_separate() -> None:
    parsed = parse_yaml(DOC)
    assert parsed.ok
    assert parsed.value == {
        "id": "detox",
        "stages": [{"id": "a", "expected_duration": {"min": "3d", "max": "14d"}}, {"id": "b"}],
        "when": {"in": ["x", "y"]},
    }
    where = parsed.source_map.locate
    assert where(("id",)) == (2, 5)
    assert where(("stages", 0)) == (4, 5)
    assert where(("stages", 0, "id")) == (4, 9)
    assert where(("stages", 0, "expected_duration", "max")) == (5, 39)
    assert where(("when", "in", 1)) == (8, 11)
    assert where(()) == (2, 1)


def test_missing_paths_fall_back_to_the_nearest_ancestor_and_keys_have_their_own_position() -> None:
    source_map = parse_yaml(DOC).source_map
    assert source_map.locate(("stages", 1, "name")) == (6, 5)
    assert source_map.locate(("stages", 7, "id")) == source_map.locate(("stages",)) == (4, 3)
    assert source_map.locate(("nowhere", 3)) == (2, 1)
    assert source_map.locate_key(("stages", 0, "expected_duration")) == (5, 5)
    assert source_map.locate_key(("stages",)) == (3, 1)
    assert source_map.locate_key(("stages", 0)) == source_map.locate(("stages", 0))


def test_columns_count_characters_not_bytes() -> None:
    parsed = parse_yaml("titre: désintoxication\nnom: é\n")
    assert parsed.source_map.locate(("nom",)) == (2, 6)
    assert parsed.value["titre"] == "désintoxication"


def test_scalars_resolve_to_json_types_and_everything_else_stays_text() -> None:
    parsed = parse_yaml(
        "n: 3\nf: 2.5\nb: true\nnothing: ~\nd: 2026-01-01\nt: 2026-01-01T10:00:00Z\nq: '3'\ns: 3d\nhex: 0x10\n"
        "e: !!str 12\nempty:\n"
    )
    assert parsed.value == {
        "n": 3,
        "f": 2.5,
        "b": True,
        "nothing": None,
        "d": "2026-01-01",
        "t": "2026-01-01T10:00:00Z",
        "q": "3",
        "s": "3d",
        "hex": 16,
        "e": "12",
        "empty": None,
    }


def test_bytes_and_text_give_the_same_result_and_a_bom_is_accepted() -> None:
    assert parse_yaml(DOC.encode()).value == parse_yaml(DOC).value
    assert parse_yaml(b"\xef\xbb\xbf" + DOC.encode()).value == parse_yaml(DOC).value


def test_merge_keys_merge_and_written_keys_win() -> None:
    parsed = parse_yaml("base: &b {after: 0h, to: a}\nrung:\n  <<: *b\n  to: b\n")
    assert parsed.ok
    assert parsed.value["rung"] == {"after": "0h", "to": "b"}
    assert parsed.source_map.locate(("rung", "to")) == (4, 7)
    assert parsed.source_map.locate(("rung", "after")) == (3, 7)


def test_aliases_expand_to_equal_values() -> None:
    parsed = parse_yaml("ladder: &l [{after: 0h, to: a}]\nother: *l\n")
    assert parsed.value["other"] == parsed.value["ladder"]
    assert parsed.source_map.locate(("other", 0, "to")) == (2, 8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (1, 1, "the file is empty (nothing but blank lines or comments)")),
        ("# only\n\n# comments\n", (1, 1, "the file is empty (nothing but blank lines or comments)")),
        ("a: 1\n\tb: 2\n", (2, 1, "tab character in indentation; YAML indents with spaces only")),
        ("a: 1\nb: 2\x00\n", (2, 5, "NUL byte is not allowed in YAML; is this a text file?")),
        ("a: \x07\n", (1, 4, "character U+0007 is not allowed in YAML; is this a text file?")),
        ("a: 1\n---\nb: 2\n", (2, 1, "a second YAML document ('---'); a pathway file holds one")),
        ("a: *nope\n", (1, 4, "alias *nope has no anchor &nope before it")),
        ("a: &x [1, *x]\n", (1, 11, "alias *x refers to a value that contains it")),
        ("a: !!python/object:os.system x\n", (1, 4, "YAML tag !!python/object:os.system is not supported here")),
        ("a: !!set {x}\n", (1, 4, "YAML tag !!set is not supported here")),
    ],
)
def test_bad_input_is_one_clean_problem(text: str, expected: tuple[int, int, str]) -> None:
    assert problems(text) == [expected]


def test_syntax_errors_keep_pyyaml_positions_made_one_based() -> None:
    text = "a: [1, 2\nb: 3\n"
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    mark = caught.value.problem_mark
    assert mark is not None
    ((line, col, message),) = problems(text)
    assert (line, col) == (mark.line + 1, mark.column + 1)
    assert message.startswith(str(caught.value.problem))


def test_an_unclosed_quote_names_where_it_opened() -> None:
    ((line, col, message),) = problems('title: "Detox\nid: x\nlevel: "2.1"\n')
    assert (line, col) == (3, 9)
    assert "the quoted value at line 1, column 8 runs to here: is a closing quote missing?" in message


def test_invalid_utf8_is_placed_at_the_bad_byte() -> None:
    assert problems("id: x\ntitle: caf\xe9\n".encode("latin-1")) == [
        (2, 11, "file is not UTF-8 text (byte 0xe9); save it as UTF-8")
    ]


def test_every_duplicate_key_is_reported_at_the_second_key() -> None:
    assert problems("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n") == [
        (4, 3, "duplicate key 'c' (first on line 3)"),
        (5, 1, "duplicate key 'a' (first on line 1)"),
    ]
    assert parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n").problems[0].path == ("b", "c")


def test_keys_yaml_reads_as_booleans_numbers_or_null_are_named_as_written() -> None:
    assert problems("on: x\nYes: 2\n1.5: 3\n~: 4\n? [a]\n: 5\n") == [
        (1, 1, "key `on` is read as a boolean by YAML; quote it or use `event`"),
        (2, 1, "key `Yes` is read as a boolean by YAML; quote it"),
        (3, 1, "key `1.5` is read as a number by YAML; quote it"),
        (4, 1, "key `~` is read as nothing (null) by YAML; quote it"),
        (5, 3, "a mapping key must be text, not a list or mapping"),
    ]
    assert parse_yaml("'on': x\n").value == {"on": "x"}


def test_an_integer_too_long_to_read_is_a_problem_not_a_crash() -> None:
    assert problems("n: " + "9" * 5000) == [(1, 4, f"'{'9' * 37}...' cannot be read as a whole number")]


def test_a_yaml_bomb_is_refused_before_it_is_expanded() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    found = problems("\n".join(lines))
    assert time.perf_counter() - started < 1
    assert found == [(6, 11, f"document expands to more than {MAX_NODES} values (YAML aliases?); refusing it")]


def test_the_node_limit_counts_expanded_aliases() -> None:
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    # root, a, [1, 2, 3], b, [ ], then each alias adds the 4 values it stands for: 16
    assert parse_yaml(text, max_nodes=16).ok
    assert problems(text, max_nodes=15) == [
        (2, 9, "document expands to more than 15 values (YAML aliases?); refusing it")
    ]


@pytest.mark.parametrize("text", ["[" * 100_000, "- " * 100_000 + "x", "{a: " * 50_000 + "1" + "}" * 50_000])
def test_deep_nesting_is_refused_without_crashing(text: str) -> None:
    found = problems(text)
    assert len(found) == 1
    assert found[0][2] == "nesting is deeper than 64 levels"


def test_nesting_at_the_limit_is_fine() -> None:
    assert parse_yaml("[" * 64 + "]" * 64).ok
    assert not parse_yaml("[" * 65 + "]" * 65).ok


def test_a_file_over_the_size_limit_is_refused_without_parsing() -> None:
    big = "a: " + "x" * 6_000_000
    started = time.perf_counter()
    assert problems(big) == [(1, 1, "file is too large (5.7 MB); the limit is 5.0 MB")]
    assert time.perf_counter() - started < 0.5
    assert problems(b"a: " + b"x" * 100, max_bytes=50) == [(1, 1, "file is too large (0.0 MB); the limit is 0.0 MB")]


def test_a_document_that_is_not_a_mapping_parses_and_is_left_to_the_schema() -> None:
    assert parse_yaml("- a\n- b\n").value == ["a", "b"]
    assert parse_yaml("just text\n").value == "just text"
    assert parse_yaml("---\n").value is None
    assert parse_yaml("---\n").ok


def test_problems_carry_their_document_path_when_known() -> None:
    (problem,) = parse_yaml("stages:\n  - id: !!binary aGk=\n").problems
    assert problem == SourceProblem(2, 9, "YAML tag !!binary is not supported here", ("stages", 0, "id"))


def test_a_key_finding_is_a_finding() -> None:
    finding = KeyFinding(("roles", "Bad"), "bad key")
    assert isinstance(finding, Finding)
    assert finding.severity == "error"
