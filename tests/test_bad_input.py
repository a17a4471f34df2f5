"""The bad-input matrix (issue 14): what an unfriendly user or an unlucky coordinator types, into every command.

Each case is an argv as typed at a shell, run through ``engine.cli``: the designer commands (validate, plan,
graph) against files that are not what they seem (FIFOs, junk, huge durations); every other command against a
data folder prepared with the in-memory app (the seed pathways registered, episodes enrolled, a consent, an
escalation and a discrepancy on record), on SQLite and on PostgreSQL. Every case must be refused:

- exit 1 (2 for a usage error argparse catches), with exactly one line of output: no traceback, no SQL, no
  "unexpected" error, and no more than ~100 characters of what was typed echoed back;
- the line names the field (or the file) and the rule;
- nothing changed: every table of the store has as many rows as before;
- Prefect was never asked: the dispatcher's ``ready()`` was not called, so the refusal cannot depend on it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, table
from sqlmodel import Session, select
from store_fixtures import BACKENDS, database_url

import engine.cli.episodes
import engine.cli.safety
import engine.cli.tokens
import engine.files
from engine.app import App, Settings, enroll, record_event
from engine.app.inline import InlineDispatcher, inline_app
from engine.app.pathways import register_pathways
from engine.app.safety import record_consent, record_medications
from engine.app.tokens import create_token, revoke_token
from engine.cli import main
from engine.clock import ManualClock
from engine.episode.domain.consent import single_tpo_consent
from engine.store import DiscrepancyRecord, EscalationRecord

ROOT = Path(__file__).resolve().parents[1]
LONG = "x" * 100_000
DIGITS = "9" * 100_000
SEED = (ROOT / "pathways" / "reentry.yaml").read_text()


class CountingDispatcher(InlineDispatcher):
    """The in-memory dispatcher, counting how often a use case asked whether Prefect can take work."""

    def __init__(self) -> None:
        super().__init__()
        self.readies = 0

    def ready(self) -> None:
        self.readies += 1


@dataclass
class World:
    app: App
    dispatcher: CountingDispatcher
    names: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        with self.app.engine.connect() as connection:
            tables = inspect(connection).get_table_names()
            return {t: connection.execute(select(func.count()).select_from(table(t))).scalar_one() for t in tables}


def _pathway_file(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Files the designer commands are pointed at: FIFOs, a folder holding one, junk, pathways with huge durations."""
    tmp = tmp_path_factory.mktemp("bad-files")
    fifo_dir = tmp / "fifos"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "stuck.yaml")
    (tmp / "empty").mkdir()
    (tmp / "junk.yaml").write_bytes(b"\xff\xfe\x00binary\x00junk\x9c")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.files, "READ_TIMEOUT", 0.3)
        patch.delenv("CAREPATH_HOME", raising=False)  # validate warns from a store only when there is one
        yield {
            "tmp": str(tmp),
            "fifo": str(fifo_dir / "stuck.yaml"),
            "fifo_dir": str(fifo_dir),
            "empty_dir": str(tmp / "empty"),
            "junk": str(tmp / "junk.yaml"),
            "huge": _pathway_file(tmp, "huge.yaml", SEED.replace("max: 90d", "max: 99999999999999d")),
            "huge_iso": _pathway_file(tmp, "huge-iso.yaml", SEED.replace("max: 90d", "max: P99999999999999999W")),
            "digits": _pathway_file(tmp, "digits.yaml", SEED.replace("max: 90d", f"max: {'9' * 5000}d")),
            "newline_key": _pathway_file(tmp, "newline-key.yaml", SEED + '"bad\\nkey": 1\n'),
            "bad_model": _pathway_file(tmp, "bad-model.yaml", "events:\n  custody.relesed: { p: 2 }\n"),
        }


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A data folder on each backend: the seed pathways, two episodes, a consent, an escalation, a discrepancy."""
    tmp = tmp_path_factory.mktemp("bad-input")
    with database_url(request.param, tmp) as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAREPATH_HOME", str(tmp / "home"))
        patch.setenv("CAREPATH_DATABASE_URL", url)
        patch.delenv("PREFECT_API_URL", raising=False)
        app = inline_app(Settings.from_env(), ManualClock())
        dispatcher = CountingDispatcher()
        dispatcher.app, app.dispatcher = app, dispatcher
        for module in (engine.cli.episodes, engine.cli.safety, engine.cli.tokens):
            patch.setattr(module, "cli_app", lambda: app)
        register_pathways(app, ROOT / "pathways")
        create_token(app, "coordinator", label="Intake desk")
        revoked, _ = create_token(app, "operator", label="Old desk")
        revoke_token(app, revoked.id)

        ep = enroll(app, "reentry", "P-BAD-001")
        record_event(app, ep, "naloxone.provided", event_id="nal-1")
        record_event(app, ep, "moud.started", {"medication": "buprenorphine"}, event_id="moud-1")
        ep2 = enroll(app, "detox-to-aftercare", "P-BAD-002")
        now = app.clock.now()
        consent = single_tpo_consent(
            "cn-bad-1", "P-BAD-002", discloser="Main St", information="referral", signed_on=now.date()
        )
        record_consent(app, ep2, consent)
        record_medications(app, ep2, "sending", [{"name": "buprenorphine", "dose": "16 mg"}])
        record_medications(app, ep2, "receiving", [{"name": "sertraline", "dose": "50 mg"}])
        clock = app.clock
        assert isinstance(clock, ManualClock)
        clock.advance(timedelta(days=5))  # the reentry episode's first deadlines pass
        app.scheduler.run_due(app, clock.now())  # type: ignore[attr-defined]
        with Session(app.engine) as session:
            escalation = session.exec(select(EscalationRecord)).first()
            discrepancy = session.exec(select(DiscrepancyRecord)).first()
        assert escalation is not None and escalation.id is not None and discrepancy is not None

        now = clock.now()
        day = timedelta(days=1)
        names = {
            "ep": ep,
            "ep2": ep2,
            "revoked": revoked.id,
            "esc": str(escalation.id),
            "disc": discrepancy.id,
            "today": now.date().isoformat(),
            "yesterday": (now - day).date().isoformat(),
            "ten_days_ago": (now - 10 * day).date().isoformat(),
            "week_ahead": (now + 7 * day).date().isoformat(),
            "day_ahead": (now + day).date().isoformat(),
            "two_years_ago": (now - 730 * day).isoformat(),
            "two_years_ahead": (now + 730 * day).isoformat(),
            "week_ahead_time": (now + 7 * day).isoformat(),
        }
        yield World(app, dispatcher, names)
        app.close()


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    names: str  # what the one line must say: the field (or the file) and the rule
    code: int = 1


def case(id: str, argv: list[str], names: str, code: int = 1) -> Case:
    return Case(id, tuple(argv), names, code)


CONSENT = [
    "consent",
    "{ep2}",
    "--id",
    "cn-new",
    "--purpose",
    "treatment",
    "--class",
    "treating-providers",
    "--information",
    "SUD diagnosis, current medications",
    "--discloser",
    "Main St Program",
    "--signed-on",
    "{today}",
    "--signed-by",
    "P-BAD-002",
]


def consent(case_id: str, names: str, code: int = 1, drop: tuple[str, ...] = (), **options: str) -> Case:
    """The good consent above, with options replaced (``signed_on=...``), added, or dropped (``drop=("--class",)``)."""
    argv, given = [], {f"--{k.replace('_', '-')}": v for k, v in options.items()}
    args = iter(CONSENT[2:])
    for option, value in zip(args, args, strict=True):
        if option in drop:
            continue
        argv += [option, given.pop(option, value)]
    for option, value in given.items():
        argv += [option, value]
    return case(case_id, ["consent", "{ep2}", *argv], names, code)


FILE_CASES: list[Case] = [
    # --------------------------------------------------------------------------------------------- validate
    case("validate-missing", ["validate", "{tmp}/missing.yaml"], "no such file"),
    case("validate-fifo", ["validate", "{fifo}"], "not a regular file"),
    case("validate-folder-with-fifo", ["validate", "{fifo_dir}"], "not a regular file"),
    case("validate-empty-folder", ["validate", "{empty_dir}"], "no pathway files"),
    case("validate-newline-name", ["validate", "{tmp}/a\nb.yaml"], "no such file"),
    case("validate-5000-char-name", ["validate", "{tmp}/" + "x" * 5000 + ".yaml"], "no such file"),
    case("validate-dev-null", ["validate", "/dev/null"], "empty"),
    case("validate-dev-zero", ["validate", "/dev/zero"], "too large"),
    case("validate-binary", ["validate", "{junk}"], "UTF-8"),
    case(
        "validate-huge-duration",
        ["validate", "{huge}"],
        "pre_release_window.max: '99999999999999d' is longer than ten years",
    ),
    case("validate-huge-iso-duration", ["validate", "{huge_iso}"], "is longer than ten years"),
    case("validate-5000-digit-duration", ["validate", "{digits}"], "is longer than ten years"),
    case("validate-newline-key", ["validate", "{newline_key}"], "unexpected field 'bad\\nkey'"),
    # --------------------------------------------------------------------------------------------- simulate
    case("simulate-people-zero", ["simulate", "pathways/reentry.yaml", "--people", "0"], "--people: 0 is outside"),
    case("simulate-people-words", ["simulate", "pathways/reentry.yaml", "--people", "many"], "--people: 'many' is not"),
    case("simulate-days-huge", ["simulate", "pathways/reentry.yaml", "--days", DIGITS], "--days"),
    case(
        "simulate-html-no-folder", ["simulate", "pathways/reentry.yaml", "--html", "{tmp}/no/x.html"], "no such folder"
    ),
    case("simulate-min-cell-zero", ["simulate", "pathways/reentry.yaml", "--min-cell", "0"], "--min-cell: 0 is"),
    case("simulate-by-unknown", ["simulate", "pathways/reentry.yaml", "--by", "insurence"], "--by: 'insurence'"),
    case("simulate-start-words", ["simulate", "pathways/reentry.yaml", "--start", "soon"], "--start: 'soon' is not"),
    case("simulate-missing-pathway", ["simulate", "{tmp}/missing.yaml"], "missing.yaml:1:1: error: $: no such file"),
    case("simulate-model-missing", ["simulate", "pathways/reentry.yaml", "--model", "{tmp}/m.yaml"], "m.yaml:1:1"),
    case("simulate-model-fifo", ["simulate", "pathways/reentry.yaml", "--model", "{fifo}"], "not a regular file"),
    case("simulate-model-binary", ["simulate", "pathways/reentry.yaml", "--model", "{junk}"], "UTF-8"),
    case(
        "simulate-model-misspelt-event",
        ["simulate", "pathways/reentry.yaml", "--model", "{bad_model}"],
        "bad-model.yaml:2:3: error: $.events['custody.relesed']: unknown event",
    ),
    # ------------------------------------------------------------------------------------------------- plan
    case("plan-missing", ["plan", "{tmp}/missing.yaml"], "missing.yaml:1:1: error: $: no such file"),
    case("plan-fifo", ["plan", "{fifo}"], "not a regular file"),
    case("plan-huge-duration-file", ["plan", "{huge}"], "longer than ten years"),
    case(
        "plan-param-huge",
        ["plan", "pathways/reentry.yaml", "--param", "pre_release_window=99999999999d"],
        "pre_release_window",
    ),
    case("plan-param-no-equals", ["plan", "pathways/reentry.yaml", "--param", "pre_release_window"], "NAME=DURATION"),
    case(
        "plan-param-unknown",
        ["plan", "pathways/reentry.yaml", "--param", "release_window=30d"],
        "unknown parameter 'release_window'",
    ),
    case(
        "plan-param-below-min", ["plan", "pathways/reentry.yaml", "--param", "pre_release_window=0d"], "below its min"
    ),
    case(
        "plan-param-newline-name",
        ["plan", "pathways/reentry.yaml", "--param", "pre\nrelease=1d"],
        "--param: 'pre\\nrelease' is not a parameter name",
    ),
    case(
        "plan-param-words",
        ["plan", "pathways/reentry.yaml", "--param", "pre_release_window=ten days"],
        "is not a duration",
    ),
    case(
        "plan-param-twice",
        ["plan", "pathways/reentry.yaml", "--param", "pre_release_window=30d", "--param", "pre_release_window=60d"],
        "given twice",
    ),
    # ------------------------------------------------------------------------------------------------ graph
    case("graph-missing", ["graph", "{tmp}/missing.yaml"], "no such file"),
    case("graph-fifo", ["graph", "{fifo}"], "not a regular file"),
    case(
        "graph-param-huge",
        ["graph", "pathways/reentry.yaml", "--param", "pre_release_window=P99999999999999W"],
        "longer than ten years",
    ),
    case(
        "graph-param-above-max",
        ["graph", "pathways/reentry.yaml", "--param", "pre_release_window=91d"],
        "above its max",
    ),
]

CASES: list[Case] = [
    # ----------------------------------------------------------------------------------------------- enroll
    case("enroll-person-empty", ["enroll", "reentry", "--person", ""], "person id: is empty"),
    case("enroll-person-100k", ["enroll", "reentry", "--person", "P" * 100_000], "person id"),
    case("enroll-person-newline", ["enroll", "reentry", "--person", "P-1\nX"], "person id: 'P-1\\nX' contains '\\n'"),
    case("enroll-person-space", ["enroll", "reentry", "--person", "P 1"], "person id"),
    case("enroll-person-65", ["enroll", "reentry", "--person", "P" * 65], "at most 64"),
    case("enroll-person-bell", ["enroll", "reentry", "--person", "P-\x07"], "person id"),
    case("enroll-person-rtl-override", ["enroll", "reentry", "--person", "\u202eP-1"], "person id"),
    case("enroll-person-invalid-utf8", ["enroll", "reentry", "--person", "P-\udcff"], "person id"),
    case("enroll-at-year-1", ["enroll", "reentry", "--person", "P-2", "--at", "0001-01-01"], "enrollment time"),
    case(
        "enroll-at-year-9999", ["enroll", "reentry", "--person", "P-2", "--at", "9999-12-31T23:59"], "enrollment time"
    ),
    case("enroll-at-words", ["enroll", "reentry", "--person", "P-2", "--at", "yesterday"], "enrollment time"),
    case(
        "enroll-at-two-years-ago",
        ["enroll", "reentry", "--person", "P-2", "--at", "{two_years_ago}"],
        "enrollment time",
    ),
    case(
        "enroll-at-a-week-ahead",
        ["enroll", "reentry", "--person", "P-2", "--at", "{week_ahead_time}"],
        "enrollment time",
    ),
    case(
        "enroll-at-year-1-east",
        ["enroll", "reentry", "--person", "P-2", "--at", "0001-01-01T00:00+14:00"],
        "enrollment time",
    ),
    case(
        "enroll-at-year-9999-west",
        ["enroll", "reentry", "--person", "P-2", "--at", "9999-12-31T23:59-14:00"],
        "enrollment time",
    ),
    case("enroll-at-100k", ["enroll", "reentry", "--person", "P-2", "--at", LONG], "enrollment time"),
    case(
        "enroll-fact-undeclared",
        ["enroll", "reentry", "--person", "P-2", "--data", "bogus=1"],
        "fact: 'bogus' is not declared",
    ),
    case(
        "enroll-fact-not-a-number",
        ["enroll", "reentry", "--person", "P-2", "--data", "days_on_moud=lots"],
        "days_on_moud",
    ),
    case("enroll-fact-nan", ["enroll", "reentry", "--person", "P-2", "--data", "days_on_moud=nan"], "days_on_moud"),
    case(
        "enroll-fact-infinite", ["enroll", "reentry", "--person", "P-2", "--data", "days_on_moud=1e999"], "days_on_moud"
    ),
    case(
        "enroll-fact-100k-digits",
        ["enroll", "reentry", "--person", "P-2", "--data", f"days_on_moud={DIGITS}"],
        "days_on_moud",
    ),
    case("enroll-fact-empty", ["enroll", "reentry", "--person", "P-2", "--data", "days_on_moud="], "days_on_moud"),
    case("enroll-data-no-equals", ["enroll", "reentry", "--person", "P-2", "--data", "days_on_moud"], "--data"),
    case("enroll-data-no-key", ["enroll", "reentry", "--person", "P-2", "--data", "=5"], "--data"),
    case(
        "enroll-data-twice",
        ["enroll", "reentry", "--person", "P-2", "--data", "days_on_moud=1", "--data", "days_on_moud=2"],
        "given twice",
    ),
    case("enroll-fact-newline-name", ["enroll", "reentry", "--person", "P-2", "--data", "a\nb=1"], "fact"),
    case("enroll-fact-100k-name", ["enroll", "reentry", "--person", "P-2", "--data", f"{LONG}=1"], "fact"),
    case(
        "enroll-fact-enum",
        ["enroll", "detox-to-aftercare", "--person", "P-2", "--data", "insurance=medicaide"],
        "did you mean 'medicaid'",
    ),
    case(
        "enroll-fact-boolean",
        ["enroll", "detox-to-aftercare", "--person", "P-2", "--data", "needs_withdrawal_management=maybe"],
        "needs_withdrawal_management",
    ),
    case(
        "enroll-param-huge",
        ["enroll", "reentry", "--person", "P-2", "--param", "pre_release_window=99999999999d"],
        "pre_release_window",
    ),
    case(
        "enroll-param-above-max",
        ["enroll", "reentry", "--person", "P-2", "--param", "pre_release_window=91d"],
        "above its max",
    ),
    case(
        "enroll-param-unknown",
        ["enroll", "reentry", "--person", "P-2", "--param", "bogus=1d"],
        "unknown parameter 'bogus'",
    ),
    case(
        "enroll-param-none-declared",
        ["enroll", "detox-to-aftercare", "--person", "P-2", "--param", "pre_release_window=30d"],
        "unknown parameter",
    ),
    case("enroll-pathway-unknown", ["enroll", "nosuch", "--person", "P-2"], "no pathway 'nosuch'"),
    case("enroll-pathway-newline", ["enroll", "re\nentry", "--person", "P-2"], "pathway id"),
    case("enroll-pathway-100k", ["enroll", LONG, "--person", "P-2"], "pathway id"),
    case("enroll-pathway-uppercase", ["enroll", "Reentry", "--person", "P-2"], "pathway id"),
    case("enroll-no-person", ["enroll", "reentry"], "--person", code=2),
    # ------------------------------------------------------------------------------------------------ event
    case("event-episode-unknown", ["event", "ep-00000000", "naloxone.provided"], "no episode 'ep-00000000'"),
    case("event-episode-newline", ["event", "ep-1\n2", "naloxone.provided"], "episode id"),
    case("event-episode-100k", ["event", LONG, "naloxone.provided"], "episode id"),
    case("event-episode-empty", ["event", "", "naloxone.provided"], "episode id"),
    case("event-undeclared", ["event", "{ep}", "moud.stopped"], "event: 'moud.stopped' is not declared"),
    case("event-name-newline", ["event", "{ep}", "moud.\nstarted"], "event"),
    case("event-name-100k", ["event", "{ep}", LONG], "event"),
    case("event-name-empty", ["event", "{ep}", ""], "event"),
    case(
        "event-field-undeclared",
        ["event", "{ep}", "moud.started", "--data", "medication=methadone", "--data", "dose=16"],
        "payload field: 'dose'",
    ),
    case(
        "event-field-enum", ["event", "{ep}", "moud.started", "--data", "medication=heroin"], "payload field medication"
    ),
    case(
        "event-field-number",
        ["event", "{ep}", "custody.released", "--data", "bridge_supply_days=lots"],
        "bridge_supply_days",
    ),
    case(
        "event-field-infinite",
        ["event", "{ep}", "custody.released", "--data", "bridge_supply_days=inf"],
        "bridge_supply_days",
    ),
    case(
        "event-field-100k",
        [
            "event",
            "{ep}",
            "wallet-card.issued",
            "--data",
            "medication=methadone",
            "--data",
            f"dose={LONG}",
            "--data",
            "prescriber_contact=Clinic",
        ],
        "payload field dose",
    ),
    case(
        "event-field-escape",
        [
            "event",
            "{ep}",
            "wallet-card.issued",
            "--data",
            "medication=methadone",
            "--data",
            "dose=\x1b[2J16 mg",
            "--data",
            "prescriber_contact=Clinic",
        ],
        "payload field dose",
    ),
    case(
        "event-field-missing",
        [
            "event",
            "{ep}",
            "wallet-card.issued",
            "--data",
            "medication=methadone",
            "--data",
            "prescriber_contact=Clinic",
        ],
        "missing field 'dose'",
    ),
    case(
        "event-field-newline-name",
        ["event", "{ep}", "moud.started", "--data", "medi\ncation=methadone"],
        "payload field",
    ),
    case("event-field-100k-name", ["event", "{ep}", "moud.started", "--data", f"{LONG}=methadone"], "payload field"),
    case("event-data-no-equals", ["event", "{ep}", "moud.started", "--data", "medication"], "--data"),
    case("event-id-empty", ["event", "{ep}", "naloxone.provided", "--id", ""], "event id"),
    case("event-id-newline", ["event", "{ep}", "naloxone.provided", "--id", "nal\n2"], "event id"),
    case("event-id-100k", ["event", "{ep}", "naloxone.provided", "--id", LONG], "event id"),
    case("event-id-space", ["event", "{ep}", "naloxone.provided", "--id", "nal 2"], "event id"),
    case(
        "event-id-reused-other-event",
        ["event", "{ep}", "moud.started", "--data", "medication=methadone", "--id", "nal-1"],
        "event id 'nal-1' was already used for event 'naloxone.provided'",
    ),
    case(
        "event-id-reused-other-payload",
        ["event", "{ep}", "moud.started", "--data", "medication=methadone", "--id", "moud-1"],
        "event id 'moud-1' was already used",
    ),
    case(
        "event-medications-not-a-list",
        ["event", "{ep}", "medications.sending-list", "--data", "medications=buprenorphine"],
        "medications",
    ),
    case("event-consent-id-newline", ["event", "{ep}", "consent.recorded", "--data", "consent=cn\n1"], "consent id"),
    case("event-need-uppercase", ["event", "{ep}", "need.identified", "--data", "need=Housing"], "need"),
    case(
        "event-appointment-year-1",
        ["event", "{ep}", "handoff.move", "--data", "action=schedule", "--data", "appointment_at=0001-01-01"],
        "appointment time",
    ),
    case(
        "event-party-unknown",
        ["event", "{ep}", "handoff.move", "--data", "action=accept", "--data", "party=nobody"],
        "handoff party",
    ),
    # ---------------------------------------------------------------------------------------------- handoff
    case("handoff-action-unknown", ["handoff", "{ep2}", "teleport"], "handoff action: 'teleport' is not one of"),
    case("handoff-action-newline", ["handoff", "{ep2}", "acc\nept"], "handoff action"),
    case("handoff-action-100k", ["handoff", "{ep2}", LONG], "handoff action"),
    case("handoff-as-unknown", ["handoff", "{ep2}", "accept", "--as", "bystander"], "--as", code=2),
    case("handoff-reason-100k", ["handoff", "{ep2}", "decline", "--reason", LONG], "payload field reason"),
    case(
        "handoff-reason-escape",
        ["handoff", "{ep2}", "decline", "--reason", "no bed\x1b]0;owned\x07"],
        "payload field reason",
    ),
    case("handoff-outcome-100k", ["handoff", "{ep2}", "return-outcome", "--outcome", LONG], "payload field outcome"),
    case("handoff-at-words", ["handoff", "{ep2}", "schedule", "--at", "next tuesday"], "appointment time"),
    case("handoff-at-year-1", ["handoff", "{ep2}", "schedule", "--at", "0001-01-01"], "appointment time"),
    case("handoff-at-year-9999", ["handoff", "{ep2}", "schedule", "--at", "9999-12-31T23:59"], "appointment time"),
    case(
        "handoff-at-year-9999-west",
        ["handoff", "{ep2}", "schedule", "--at", "9999-12-31T23:59-14:00"],
        "appointment time",
    ),
    case(
        "handoff-at-two-years-ahead", ["handoff", "{ep2}", "schedule", "--at", "{two_years_ahead}"], "appointment time"
    ),
    case("handoff-handoff-newline", ["handoff", "{ep2}", "accept", "--handoff", "ep/1\n/handoff"], "handoff id"),
    case("handoff-handoff-100k", ["handoff", "{ep2}", "accept", "--handoff", LONG], "handoff id"),
    case("handoff-id-newline", ["handoff", "{ep2}", "accept", "--id", "h\n1"], "event id"),
    case("handoff-episode-unknown", ["handoff", "ep-00000000", "accept"], "no episode"),
    case("handoff-episode-100k", ["handoff", LONG, "accept"], "episode id"),
    # ------------------------------------------------------------------------------------------------- auth
    case("auth-action-unknown", ["auth", "{ep2}", "grant"], "invalid choice: 'grant'", code=2),
    case("auth-deny-no-reason", ["auth", "{ep2}", "deny"], "missing field 'reason'"),
    case("auth-deny-reason-100k", ["auth", "{ep2}", "deny", "--reason", LONG], "payload field reason"),
    case("auth-to-newline", ["auth", "{ep2}", "request", "--to", "resi\ndential"], "stage id"),
    case("auth-to-100k", ["auth", "{ep2}", "request", "--to", LONG], "stage id"),
    case("auth-to-uppercase", ["auth", "{ep2}", "request", "--to", "Residential"], "stage id"),
    case("auth-handoff-newline", ["auth", "{ep2}", "approve", "--handoff", "h\n1"], "handoff id"),
    case("auth-id-100k", ["auth", "{ep2}", "approve", "--id", LONG], "event id"),
    case("auth-episode-unknown", ["auth", "ep-00000000", "request"], "no episode"),
    # ---------------------------------------------------------------------------------------------- consent
    consent(
        "consent-already-expired",
        "expiry date: '{yesterday}' has already passed",
        signed_on="{ten_days_ago}",
        expires="{yesterday}",
    ),
    consent(
        "consent-signed-in-the-future", "signed-on date: '{week_ahead}' is in the future", signed_on="{week_ahead}"
    ),
    consent("consent-purpose-empty", "purpose: is empty", purpose=""),
    consent("consent-purpose-undeclared", "purpose: 'marketing' is not declared", purpose="marketing"),
    consent("consent-purpose-typo", "did you mean 'treatment'", purpose="treatmnt"),
    consent("consent-purpose-100k", "purpose", purpose=LONG),
    consent("consent-no-recipient", "recipient: none given", drop=("--class",)),
    consent("consent-class-unknown", "recipient class: 'friends' is not declared", **{"class": "friends"}),
    consent("consent-recipient-100k", "recipient", recipient=LONG),
    consent("consent-recipient-newline", "recipient", recipient="Main St\nClinic"),
    consent("consent-information-100k", "information", information=LONG),
    consent("consent-information-empty", "information: is empty", information=""),
    consent("consent-discloser-empty", "discloser: is empty", discloser=""),
    consent("consent-signed-on-words", "signed-on date: 'last week' is not a date", signed_on="last week"),
    consent(
        "consent-signed-on-year-1", "signed-on date: '0001-01-01' is more than ten years ago", signed_on="0001-01-01"
    ),
    consent("consent-expires-words", "expiry date: 'never' is not a date", expires="never"),
    consent("consent-expires-year-9999", "expiry date: '9999-12-31' is more than 50 years ahead", expires="9999-12-31"),
    consent(
        "consent-expires-before-signed", "is before the signed-on date", signed_on="{week_ahead}", expires="{day_ahead}"
    ),
    consent("consent-id-empty", "consent id: is empty", id=""),
    consent("consent-id-newline", "consent id", id="cn\n1"),
    consent("consent-id-100k", "consent id", id=LONG),
    consent("consent-id-taken", "consent 'cn-bad-1' is already recorded", id="cn-bad-1"),
    consent("consent-signed-by-newline", "signed-by id", signed_by="P-BAD\n002"),
    consent("consent-signed-by-empty", "signed-by id", signed_by=""),
    consent("consent-no-information", "--information", code=2, drop=("--information",)),
    case("consent-episode-unknown", [*CONSENT[:1], "ep-00000000", *CONSENT[2:]], "no episode"),
    # ----------------------------------------------------------------------------------------------- revoke
    case("revoke-not-written", ["revoke", "cn-bad-1"], "written: a revocation must be in writing"),
    case("revoke-unknown", ["revoke", "cn-nosuch", "--written"], "no consent 'cn-nosuch'"),
    case("revoke-id-newline", ["revoke", "cn\nbad", "--written"], "consent id"),
    case("revoke-id-100k", ["revoke", LONG, "--written"], "consent id"),
    case("revoke-id-empty", ["revoke", "", "--written"], "consent id"),
    # ------------------------------------------------------------------------------------------ disclosures
    case("disclosures-unknown", ["disclosures", "ep-00000000"], "no episode"),
    case("disclosures-newline", ["disclosures", "ep\n1"], "episode id"),
    case("disclosures-100k", ["disclosures", LONG], "episode id"),
    case("disclosures-empty", ["disclosures", ""], "episode id"),
    # ------------------------------------------------------------------------------------------------- meds
    case("meds-empty", ["meds", "{ep2}", "sending", "--med", ""], "--med"),
    case("meds-six-fields", ["meds", "{ep2}", "sending", "--med", "a|b|c|d|e|f"], "at most 5"),
    case("meds-name-100k", ["meds", "{ep2}", "sending", "--med", LONG], "medication 1 name"),
    case("meds-name-newline", ["meds", "{ep2}", "sending", "--med", "bupre\nnorphine|16 mg"], "medication 1 name"),
    case("meds-dose-100k", ["meds", "{ep2}", "sending", "--med", f"buprenorphine|{LONG}"], "medication 1 dose"),
    case(
        "meds-101-entries",
        ["meds", "{ep2}", "sending", *[a for n in range(101) for a in ("--med", f"drug-{n}")]],
        "at most 100",
    ),
    case("meds-side-unknown", ["meds", "{ep2}", "both", "--med", "x"], "side", code=2),
    case("meds-episode-unknown", ["meds", "ep-00000000", "sending", "--med", "x"], "no episode"),
    case("meds-episode-100k", ["meds", LONG, "sending", "--med", "x"], "episode id"),
    # ------------------------------------------------------------------------------------------ intentional
    case("intentional-id-empty", ["intentional", "", "--reason", "taper", "--by", "CLIN-7"], "discrepancy id"),
    case(
        "intentional-id-newline",
        ["intentional", "ep/1\n/omission", "--reason", "taper", "--by", "CLIN-7"],
        "discrepancy id",
    ),
    case("intentional-id-100k", ["intentional", LONG, "--reason", "taper", "--by", "CLIN-7"], "discrepancy id"),
    case(
        "intentional-unknown",
        ["intentional", "ep-00000000/1/omission:x", "--reason", "taper", "--by", "CLIN-7"],
        "no discrepancy",
    ),
    case("intentional-reason-empty", ["intentional", "{disc}", "--reason", "", "--by", "CLIN-7"], "reason: is empty"),
    case("intentional-reason-100k", ["intentional", "{disc}", "--reason", LONG, "--by", "CLIN-7"], "reason"),
    case("intentional-by-empty", ["intentional", "{disc}", "--reason", "taper", "--by", ""], "clinician id"),
    case("intentional-by-newline", ["intentional", "{disc}", "--reason", "taper", "--by", "CLIN\n7"], "clinician id"),
    case("intentional-by-100k", ["intentional", "{disc}", "--reason", "taper", "--by", LONG], "clinician id"),
    case("intentional-no-by", ["intentional", "{disc}", "--reason", "taper"], "--by", code=2),
    # -------------------------------------------------------------------------------------------------- ack
    case("ack-huge", ["ack", "99999999999999999999999", "--by", "STAFF-12"], "escalation number"),
    case("ack-zero", ["ack", "0", "--by", "STAFF-12"], "escalation number"),
    case("ack-negative", ["ack", "-5", "--by", "STAFF-12"], "escalation number"),
    case("ack-1000-digits", ["ack", "9" * 1000, "--by", "STAFF-12"], "escalation number"),
    case("ack-5000-digits", ["ack", "9" * 5000, "--by", "STAFF-12"], "ESCALATION", code=2),
    case("ack-words", ["ack", "three", "--by", "STAFF-12"], "ESCALATION", code=2),
    case("ack-fraction", ["ack", "1.5", "--by", "STAFF-12"], "ESCALATION", code=2),
    case("ack-unknown", ["ack", "424242", "--by", "STAFF-12"], "no escalation 424242"),
    case("ack-by-empty", ["ack", "{esc}", "--by", ""], "staff id"),
    case("ack-by-newline", ["ack", "{esc}", "--by", "STAFF\n12"], "staff id"),
    case("ack-by-100k", ["ack", "{esc}", "--by", LONG], "staff id"),
    # ------------------------------------------------------------------------------------------------- fhir
    case("fhir-episode-unknown", ["fhir", "export", "ep-00000000"], "no episode 'ep-00000000'"),
    case("fhir-episode-newline", ["fhir", "export", "ep-1\nX"], "episode id"),
    case("fhir-episode-100k", ["fhir", "export", LONG], "episode id"),
    case("fhir-what-unknown", ["fhir", "import", "ep-00000000"], "invalid choice", code=2),
    case("api-port-words", ["api", "--api-port", "eighty"], "--api-port", code=2),
    case("up-workers-zero", ["up", "--workers", "0"], "--workers: 0 is outside 1..32"),
    case("up-workers-many", ["up", "--workers", "33"], "--workers: 33 is outside 1..32"),
    case("up-workers-words", ["up", "--workers", "three"], "--workers: 'three' is not a whole number"),
    # ------------------------------------------------------------------------------------------------ token
    case("token-role-unknown", ["token", "create", "--role", "admin"], "role: 'admin' is not one of"),
    case("token-role-missing", ["token", "create"], "--role", code=2),
    case("token-receiver-no-program", ["token", "create", "--role", "receiver"], "program: a receiver token needs"),
    case("token-coordinator-program", ["token", "create", "--role", "coordinator", "--program", "Main St"], "program"),
    case("token-program-newline", ["token", "create", "--role", "receiver", "--program", "Main\nSt"], "program"),
    case("token-program-100k", ["token", "create", "--role", "receiver", "--program", LONG], "program"),
    case("token-label-taken", ["token", "create", "--role", "operator", "--name", "Intake desk"], "label"),
    case("token-label-newline", ["token", "create", "--role", "operator", "--name", "night\ndesk"], "label"),
    case("token-label-100k", ["token", "create", "--role", "operator", "--name", LONG], "label"),
    case("token-label-like-an-id", ["token", "create", "--role", "operator", "--name", "tok-1a2b3c4d"], "label"),
    case("token-revoke-unknown", ["token", "revoke", "tok-00000000"], "no token 'tok-00000000'"),
    case("token-revoke-again", ["token", "revoke", "{revoked}"], "{revoked} was already revoked"),
    case("token-revoke-label-again", ["token", "revoke", "Old desk"], "'Old desk' was already revoked"),
    case("token-revoke-100k", ["token", "revoke", LONG], "token"),
    case("token-revoke-newline", ["token", "revoke", "Intake\ndesk"], "token"),
    case("token-no-action", ["token"], "ACTION", code=2),
    # ----------------------------------------------------------------------------------------------- status
    case("status-unknown", ["status", "ep-00000000"], "no episode 'ep-00000000'"),
    case("status-newline", ["status", "ep-1\n2"], "episode id"),
    case("status-100k", ["status", LONG], "episode id"),
    case("status-empty", ["status", ""], "episode id"),
    case("status-sql", ["status", "ep-1'; DROP TABLE episode; --"], "episode id"),
    # --------------------------------------------------------------------------------------------- episodes
    case("episodes-pathway-newline", ["episodes", "--pathway", "re\nentry"], "pathway id"),
    case("episodes-pathway-100k", ["episodes", "--pathway", LONG], "pathway id"),
    case("episodes-pathway-uppercase", ["episodes", "--pathway", "Reentry"], "pathway id"),
    case("episodes-stage-newline", ["episodes", "--stage", "pre\nrelease"], "stage id"),
    case("episodes-stage-100k", ["episodes", "--stage", LONG], "stage id"),
    # --------------------------------------------------------------------------------------------- measures
    case("measures-from-not-a-date", ["measures", "--from", "2026-13-01"], "--from: '2026-13-01' is not a date"),
    case("measures-to-words", ["measures", "--to", "next week"], "--to: 'next week' is not a date"),
    case("measures-to-100k", ["measures", "--to", DIGITS], "--to"),
    case("measures-period-backwards", ["measures", "--from", "{today}", "--to", "{ten_days_ago}"], "period: ends"),
    case("measures-unknown-pathway", ["measures", "--pathway", "reentri"], "did you mean 'reentry'"),
    case("measures-pathway-newline", ["measures", "--pathway", "re\nentry"], "pathway id"),
    case("measures-unknown-fact", ["measures", "--by", "insurence"], "cannot stratify by 'insurence'"),
    case("measures-min-cell-zero", ["measures", "--min-cell", "0"], "--min-cell: 0 is outside 1..1,000"),
    case("measures-min-cell-word", ["measures", "--min-cell", "eleven"], "--min-cell: 'eleven' is not a whole"),
    case("measures-html-no-folder", ["measures", "--html", "/no/such/folder/report.html"], "--html"),
    case("measures-html-a-folder", ["measures", "--html", "/tmp"], "--html: '/tmp' is a folder"),
    case("measures-two-formats", ["measures", "--json", "--csv"], "not allowed with", code=2),
]


def _typed(names: dict[str, str], template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), m.group(0)), template)


def _refusal(bad: Case, names: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the case as typed; its one line of output, checked for exit code, leaks, echo length and the field."""
    try:
        code = main([_typed(names, a) for a in bad.argv])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    lines = (out + err).splitlines()
    assert (code, len(lines)) == (bad.code, 1), f"exit {code}, output:\n{out}{err}"
    line = lines[0]
    for leak in ("Traceback", "[SQL", "sqlalchemy", "psycopg", "error: unexpected", "internal error"):
        assert leak not in line
    assert len(line) <= 400, f"{len(line)} characters"
    assert not re.search(r"(.)\1{100}", line), "an echo of more than ~100 characters of what was typed"
    assert _typed(names, bad.names) in line
    return line


@pytest.mark.parametrize("bad", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_a_bad_file_or_parameter_is_one_line(
    files: dict[str, str], bad: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    _refusal(bad, files, capsys)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_in_one_line_changing_nothing(
    world: World, bad: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    before, readies = world.counts(), world.dispatcher.readies
    _refusal(bad, world.names, capsys)
    assert world.counts() == before, "a refusal changes nothing"
    assert world.dispatcher.readies == readies, "a refusal is decided before Prefect is asked"


def test_the_matrix_covers_every_command() -> None:
    commands = {c.argv[0] for c in FILE_CASES + CASES}
    assert commands == {
        "validate",
        "simulate",
        "plan",
        "graph",
        "enroll",
        "event",
        "handoff",
        "auth",
        "consent",
        "revoke",
        "disclosures",
        "meds",
        "intentional",
        "ack",
        "status",
        "episodes",
        "measures",
        "token",
        "fhir",
        "api",
        "up",
    }
    assert len(FILE_CASES + CASES) > 144
