"""The loader: stages in order, stopping between them; every problem placed in the file; never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import Diagnostic, PathwayError
from engine.language.loader import LoadResult, discover, load_pathway, load_pathway_text, load_spec
from engine.language.model import PathwaySpec
from engine.language.source import MAX_BYTES

ROOT = Path(__file__).resolve().parent.parent
MINIMAL_PATH = ROOT / "tests" / "data" / "valid" / "minimal.yaml"
MINIMAL = MINIMAL_PATH.read_text(encoding="utf-8")


def edit(*changes: tuple[str, str]) -> str:
    text = MINIMAL
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def lines(result: LoadResult) -> list[str]:
    return [str(d) for d in result.diagnostics]


def test_a_valid_file_gives_its_spec_and_text() -> None:
    result = load_pathway(MINIMAL_PATH)
    assert result.ok
    assert result.diagnostics == []
    assert isinstance(result.spec, PathwaySpec)
    assert result.spec.id == "detox-to-iop"
    assert result.path == str(MINIMAL_PATH)
    assert result.source_text == MINIMAL


def test_text_is_loaded_like_a_file_and_named_as_given() -> None:
    assert load_pathway_text(MINIMAL, "x.yaml").spec == load_pathway(MINIMAL_PATH).spec
    assert load_pathway_text(MINIMAL.encode(), "x.yaml").source_text == MINIMAL
    result = load_pathway_text(edit(("version: 1", "version: 0")), "pinned@v1")
    assert lines(result) == ["pinned@v1:4:10: error: $.version: 0 is less than the minimum 1"]
    assert result.source_text is not None and "version: 0" in result.source_text


def test_the_file_name_is_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.yaml").write_text(edit(("version: 1", "version: one")))
    monkeypatch.chdir(tmp_path)
    assert lines(load_pathway("p.yaml")) == [
        "p.yaml:4:10: error: $.version: expected a whole number, got the string 'one'"
    ]
    assert load_pathway("./p.yaml").diagnostics[0].file == "./p.yaml"


def test_a_yaml_problem_stops_before_the_schema() -> None:
    text = edit(("version: 1", "version: one"), ("    name: Intensive outpatient\n", "    name: IOP\n    name: IOP\n"))
    assert lines(load_pathway_text(text, "p.yaml")) == [
        "p.yaml:55:5: error: $.stages[1].name: duplicate key 'name' (first on line 54)"
    ]


def test_schema_problems_stop_before_the_model_and_all_of_them_are_reported() -> None:
    text = edit(
        ("version: 1", "version: one"),
        ("      max: 14d", "      max: ten days"),
        ("      in: [commercial, medicaid]\n", "      in: [commercial, medicaid]\n      equals: medicaid\n"),
        ("    name: Aftercare\n", ""),
    )
    assert lines(load_pathway_text(text, "p.yaml")) == [
        "p.yaml:4:10: error: $.version: expected a whole number, got the string 'one'",
        "p.yaml:41:12: error: $.stages[0].expected_duration.max: 'ten days' is not a duration (e.g. 10d)",
        "p.yaml:56:5: error: $.stages[2]: missing required field 'name'",
    ]


def test_model_problems_are_placed_through_aliases_and_union_noise_is_collapsed() -> None:
    text = edit(
        (
            "    when:\n      fact: insurance\n      in: [commercial, medicaid]\n",
            "    when:\n      not:\n        fact: insurance\n        in: [commercial]\n        is_set: true\n",
        ),
        (
            "    terminal: true\n",
            "    terminal: true\n    check_ins:\n      - every: 1d\n        window: 12h\n        for: P\n"
            "        owner: care-coordinator\n        done_on: screening.completed\n",
        ),
    )
    one_operator = (
        "a fact test has one operator; to test all of them: all: [{ fact: insurance, in: ... }, "
        "{ fact: insurance, is_set: ... }]"
    )
    assert lines(load_pathway_text(text, "p.yaml")) == [
        "p.yaml:62:14: error: $.stages[2].check_ins[0].for: 'P' is not a duration (e.g. 10d)",
        f"p.yaml:72:9: error: $.transitions[0].when.not: {one_operator}",
    ]


def test_meaning_problems_come_last_and_warnings_never_invalidate() -> None:
    unknown = load_pathway_text(edit(("    to: aftercare\n", "    to: aftercar\n")), "p.yaml")
    assert not unknown.ok and unknown.spec is None
    assert lines(unknown) == [
        "p.yaml:56:5: error: $.stages[2]: stage 'aftercare' cannot be reached from 'detox'",
        "p.yaml:81:9: error: $.transitions[1].to: unknown stage 'aftercar' (did you mean 'aftercare'?)",
    ]
    unused = edit(("  iop.completed:\n", "  naloxone.given:\n    description: x\n  iop.completed:\n"))
    warned = load_pathway_text(unused, "p.yaml")
    assert [d.severity for d in warned.diagnostics] == ["warning"]
    assert warned.ok and warned.spec is not None


def test_the_meaning_stage_is_skipped_while_engine_semantics_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "engine.language.semantics", None)
    assert load_pathway_text(edit(("    to: aftercare\n", "    to: aftercar\n")), "p.yaml").ok


def test_a_crashing_stage_becomes_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.language.semantics

    def broken(spec: PathwaySpec) -> list[object]:
        raise KeyError("boom")

    monkeypatch.setattr(engine.language.semantics, "check", broken)
    result = load_pathway_text(MINIMAL, "p.yaml")
    assert not result.ok
    assert lines(result) == [
        "p.yaml:1:1: error: $: internal error in the meaning stage (KeyError: 'boom'); please report it"
    ]


def test_diagnostics_are_sorted_by_line_then_column() -> None:
    text = edit(("  - id: aftercare", "  - id: After"), ("version: 1", "version: x"), ("  - id: iop", "  - id: IOP"))
    got = load_pathway_text(text, "p.yaml").diagnostics
    assert [(d.line, d.col) for d in got] == sorted((d.line, d.col) for d in got)
    assert len(got) == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a folder, not a pathway file"),
        (lambda p: None, "no such file"),
        (
            lambda p: p.write_bytes(b"") or os.truncate(p, MAX_BYTES + 1),
            "file is too large (5.0 MB); the limit is 5.0 MB",
        ),
    ],
)
def test_unreadable_paths_are_diagnostics(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "p.yaml"
    make(path)  # type: ignore[operator]
    result = load_pathway(path)
    assert not result.ok
    assert result.diagnostics == [Diagnostic(str(path), 1, 1, "$", message)]


def test_load_spec_returns_the_spec_or_raises_with_every_error(tmp_path: Path) -> None:
    assert load_spec(MINIMAL_PATH).id == "detox-to-iop"
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(("version: 1", "version: x"), ("asam_edition: 3", "asam_edition: 9")))
    with pytest.raises(PathwayError) as caught:
        load_spec(bad)
    assert [d.line for d in caught.value.diagnostics] == [4, 7]
    assert str(caught.value).count("\n") == 1


def test_discover_expands_folders_and_reports_missing_paths(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.yml", "notes.txt", "sub/c.yaml", ".hidden/d.yaml", ".e.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x: 1\n")
    (tmp_path / "empty").mkdir()
    files, problems = discover([tmp_path, tmp_path / "notes.txt", tmp_path / "b.yaml", tmp_path / "nope.yaml"])
    assert files == [str(tmp_path / n) for n in ("a.yml", "b.yaml", "sub/c.yaml", "notes.txt")]
    assert problems == [Diagnostic(str(tmp_path / "nope.yaml"), 1, 1, "$", "no such file or folder")]
    files, problems = discover([str(tmp_path / "empty")])
    assert files == []
    assert [p.message for p in problems] == ["no pathway files (*.yaml, *.yml) in this folder"]


def test_discover_keeps_relative_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    files, problems = discover(["tests/data/valid"])
    assert problems == []
    assert "tests/data/valid/minimal.yaml" in files


def test_the_loader_does_not_import_prefect_and_a_valid_file_not_even_jsonschema() -> None:
    code = textwrap.dedent(
        """
        import sys
        from engine.language.loader import load_pathway
        assert load_pathway("tests/data/valid/minimal.yaml").ok
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "sqlmodel", "sqlalchemy", "jsonschema")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
