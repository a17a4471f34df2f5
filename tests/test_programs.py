"""Issue #9, reuse across pathways: ``include:`` of a program file (roles, critical medications, ladders).

A program file and two pathways including it validate, plan and run through the service on a real store; a
conflict names both files; an error inside the program names it; the registered text is the resolved one, so a
changed program file is a changed pathway (refused without a new version).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_fixtures import migrated_database_url

from engine.app import App, Settings, enroll, record_event
from engine.app.inline import RecordingNotifier, inline_app
from engine.app.pathways import register_pathways
from engine.clock import ManualClock
from engine.errors import EpisodeError
from engine.language.loader import discover, load_pathway, load_pathway_text
from engine.plan.build import compile_plan
from engine.plan.text import plan_json

VALID = Path(__file__).parent / "data" / "valid"
PROGRAM = "oud-program.program.yaml"
PATHWAYS = ("ed-bup-primary-care.yaml", "otp-taper.yaml")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A program folder: the program file and the two pathways that include it."""
    out = tmp_path / "pathways"
    out.mkdir()
    for name in (PROGRAM, *PATHWAYS):
        shutil.copy(VALID / name, out / name)
    return out


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    with migrated_database_url("sqlite", tmp_path) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock(), notifier=RecordingNotifier({}))
        yield app
        app.close()


def test_both_pathways_inherit_the_program_and_extend_it() -> None:
    for name in PATHWAYS:
        result = load_pathway(VALID / name)
        assert result.ok and result.spec is not None, result.diagnostics
        assert result.diagnostics == []  # a program ladder one pathway does not use is no warning
        spec = result.spec
        assert {"care-coordinator", "supervisor", "prescriber", "peer-recovery-coach"} <= set(spec.roles)
        assert spec.default_ladder == "standard" and set(spec.ladders) == {"standard", "urgent"}
        assert spec.medications is not None
        assert {"buprenorphine", "methadone"} <= {m.name for m in spec.medications.critical}
    ed = load_pathway(VALID / PATHWAYS[0]).spec
    assert ed is not None and ed.medications is not None
    assert {"bridge-intake", "pcp-intake"} <= set(ed.roles)  # its own roles extend the roster
    assert "buprenorphine extended-release" in {m.name for m in ed.medications.critical}


def test_the_registered_text_alone_recompiles_the_same_plan() -> None:
    for name in PATHWAYS:
        result = load_pathway(VALID / name)
        assert result.spec is not None and result.source_text is not None
        assert "include:" not in result.source_text.split("\n", 2)[2]  # folded in, nothing left to read
        again = load_pathway_text(result.source_text, f"{name}@pinned")
        assert again.ok and again.spec is not None, again.diagnostics
        assert plan_json(compile_plan(again.spec)) == plan_json(compile_plan(result.spec))


def test_a_folder_never_takes_a_program_file_for_a_pathway(folder: Path) -> None:
    found, problems = discover([folder])
    assert problems == [] and sorted(Path(p).name for p in found) == sorted(PATHWAYS)


def test_a_program_and_two_pathways_register_and_run_on_a_real_store(app: App, folder: Path) -> None:
    specs = register_pathways(app, folder)
    assert sorted(s.id for s in specs) == ["ed-bup-primary-care", "otp-taper"]
    ep = enroll(app, "otp-taper", "P-PROG-1")
    assert app.service.episode(ep).stage == "otp"
    assert record_event(app, ep, "step-down.started").stage == "office"
    plan = app.service.plan_for(ep)
    assert plan.pathway_id == "otp-taper"
    other = enroll(app, "ed-bup-primary-care", "P-PROG-2")
    assert record_event(app, other, "ed.discharged", {"bridge_supply_days": 7}).stage == "bridge"


def test_a_changed_program_file_is_a_changed_pathway(app: App, folder: Path) -> None:
    register_pathways(app, folder)
    program = folder / PROGRAM
    program.write_text(program.read_text().replace("title: Clinical supervisor", "title: Medical director"))
    with pytest.raises(EpisodeError, match="already registered with other content"):
        register_pathways(app, folder)
    pathway = folder / "otp-taper.yaml"
    pathway.write_text(pathway.read_text().replace("version: 1", "version: 2"))
    ed = folder / "ed-bup-primary-care.yaml"
    ed.write_text(ed.read_text().replace("version: 1", "version: 2"))
    assert len(register_pathways(app, folder)) == 2


def _pathway_including(tmp_path: Path, program: str, roles: str = "") -> Path:
    (tmp_path / "shared.program.yaml").write_text(program)
    minimal = (VALID / "minimal.yaml").read_text()
    head, _sep, rest = minimal.partition("asam_edition: 3\n")
    path = tmp_path / "uses.yaml"
    path.write_text(head + "asam_edition: 3\ninclude: shared.program.yaml\n" + rest.replace("roles:\n", roles, 1))
    return path


def test_one_role_defined_twice_with_other_content_names_both_files(tmp_path: Path) -> None:
    path = _pathway_including(tmp_path, "roles:\n  supervisor:\n    title: Medical director\n", "roles:\n")
    errors = [str(d) for d in load_pathway(path).diagnostics]
    assert len(errors) == 1 and "uses.yaml:" in errors[0] and "$.roles.supervisor" in errors[0]
    assert "role 'supervisor' is also defined in " in errors[0] and "shared.program.yaml:2:3" in errors[0]


def test_the_same_definition_in_both_files_is_fine(tmp_path: Path) -> None:
    minimal = load_pathway(VALID / "minimal.yaml").spec
    assert minimal is not None
    title = minimal.roles["supervisor"].title
    path = _pathway_including(tmp_path, f"roles:\n  supervisor:\n    title: {title}\n", "roles:\n")
    assert load_pathway(path).ok


@pytest.mark.parametrize(
    ("program", "where", "message"),
    [
        ("roles:\n  Supervisor:\n    title: X\n", ":2:3:", "is not a valid id"),
        ("roles:\n  boss:\n    title: X\nstages: []\n", ":4:1:", "unexpected field 'stages'"),
        ("ladders:\n  fast:\n    - { after: 3 days, to: supervisor }\n", ":3:16:", "'3 days'"),
        ("ladders:\n  fast:\n    - { after: 0h, to: boss }\n", ":3:24:", "unknown role 'boss'"),  # meaning stage
        ("roles: [\n", ":2:1:", "error"),
    ],
)
def test_an_error_inside_the_program_names_its_file_line_and_column(
    tmp_path: Path, program: str, where: str, message: str
) -> None:
    errors = [str(d) for d in load_pathway(_pathway_including(tmp_path, program, "roles:\n")).diagnostics]
    assert errors and all("shared.program.yaml" + where in e for e in errors), errors
    assert any(message in e for e in errors), errors


def test_a_missing_or_misnamed_program_file_is_an_error_at_the_include(tmp_path: Path) -> None:
    path = _pathway_including(tmp_path, "roles: {}\n", "roles:\n")
    path.write_text(path.read_text().replace("shared.program.yaml", "other.program.yaml"))
    assert "does not exist" in str(load_pathway(path).diagnostics[0])
    path.write_text(path.read_text().replace("other.program.yaml", "minimal.yaml"))
    assert "name it *.program.yaml" in str(load_pathway(path).diagnostics[0])


def test_validate_skips_program_files_in_a_folder_and_checks_one_named(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main

    assert main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == 2 and PROGRAM not in out
    assert main(["validate", str(folder / PROGRAM)]) == 0
    assert "program (4 roles, 2 ladders)" in capsys.readouterr().out
    (folder / PROGRAM).write_text("roles:\n  boss: {}\n")
    assert main(["validate", str(folder / PROGRAM)]) == 1
    assert f"{PROGRAM}:2:9: error: $.roles.boss: missing required field 'title'" in capsys.readouterr().out
