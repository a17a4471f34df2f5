"""Bearer tokens and request idempotency for the HTTP API (:mod:`engine.app.tokens`, :mod:`engine.app.idempotency`,
migration 0005), on SQLite and PostgreSQL, and ``carepath token create|list|revoke`` end to end. Synthetic data."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, table, text
from sqlmodel import Session
from store_fixtures import BACKENDS, downgrade_to, migrated_database_url, upgrade_to

from engine import store
from engine.app import App, Settings
from engine.app.access import Principal
from engine.app.idempotency import CLAIM_STALE, Claim, claim_request, finish_request, release_request, request_digest
from engine.app.inline import inline_app
from engine.app.tokens import create_token, list_tokens, revoke_token, verify_token
from engine.cli import main
from engine.clock import ManualClock
from engine.errors import EventRejected, InvalidInput, StoreError

PROGRAM = "Main St Residential"


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with migrated_database_url(request.param, tmp_path) as url:
        settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path), "CAREPATH_DATABASE_URL": url})
        app = inline_app(settings, ManualClock())
        yield app
        app.close()


def counts(app: App) -> dict[str, int]:
    with app.engine.connect() as connection:
        return {
            t: connection.execute(select(func.count()).select_from(table(t))).scalar_one()
            for t in ("api_token", "api_request", "audit")
        }


def table_text(app: App, name: str) -> str:
    """Every stored value of a table, as text: what someone reading the database (or a dump of it) sees."""
    with app.engine.connect() as connection:
        return repr(connection.execute(text(f"SELECT * FROM {name}")).all())


def advance(app: App, delta: timedelta) -> None:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(delta)


# ---------------------------------------------------------------------------------------------------- tokens


def test_a_created_token_verifies_as_its_principal(app: App) -> None:
    info, bearer = create_token(app, "receiver", program=PROGRAM)
    hex_id = info.id.removeprefix("tok-")
    assert info.id.startswith("tok-") and len(hex_id) == 8 and int(hex_id, 16) >= 0
    assert bearer.startswith(f"cpt_{hex_id}_") and len(bearer.split("_", 2)[2]) >= 40
    assert (info.label, info.role, info.program, info.revoked_at) == (f"receiver-{info.id}", "receiver", PROGRAM, None)
    assert verify_token(app, bearer) == Principal(info.id, info.label, "receiver", PROGRAM)

    coordinator, bearer2 = create_token(app, "coordinator", label="Intake desk")
    assert verify_token(app, bearer2) == Principal(coordinator.id, "Intake desk", "coordinator", None)
    with Session(app.engine) as session:
        audit = [(a.actor, a.action, a.detail) for a in store.audit_tail(session, None)]
    assert audit == [
        ("carepath", "token.created", {"id": info.id, "label": info.label, "role": "receiver", "program": PROGRAM}),
        (
            "carepath",
            "token.created",
            {"id": coordinator.id, "label": "Intake desk", "role": "coordinator", "program": None},
        ),
    ]


def test_the_store_keeps_only_the_secrets_hash(app: App) -> None:
    info, bearer = create_token(app, "operator")
    secret = bearer.split("_", 2)[2]
    revoke_token(app, info.id)
    for name in ("api_token", "audit"):
        assert secret not in table_text(app, name) and bearer not in table_text(app, name)
    with Session(app.engine) as session:
        record = store.get_api_token(session, info.id)
    assert record is not None and record.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()


def test_anything_wrong_with_a_token_verifies_to_none(app: App) -> None:
    info, bearer = create_token(app, "coordinator")
    other, other_bearer = create_token(app, "auditor")
    prefix, hex_id, secret = bearer.split("_", 2)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    wrong = [
        f"{prefix}_{hex_id}_{flipped}",  # a wrong secret
        f"{prefix}_{hex_id}_{other_bearer.split('_', 2)[2]}",  # another token's secret
        f"{prefix}_00000000_{secret}" if hex_id != "00000000" else f"{prefix}_11111111_{secret}",  # unknown id
        "",
        "cpt_",
        f"Bearer {bearer}",
        f"{bearer}\n",
        *([f"cpt_{hex_id.upper()}_{secret}"] if hex_id.upper() != hex_id else []),  # an id of digits only: the same
        f"cpt_{hex_id}_",
        f"cpt_{hex_id}_{secret}{'x' * 10_000}",
        f"tok-{hex_id}",
        f"cpt_{hex_id}_{secret[:10]}",
        f"cpt_{hex_id}_{secret}; DROP TABLE api_token; --",
        f"cpt_{hex_id}_{secret[:-1]}\x00",
        None,
    ]
    for candidate in wrong:
        assert verify_token(app, candidate) is None, candidate  # type: ignore[arg-type]
    assert verify_token(app, bearer) is not None
    revoke_token(app, info.label)
    assert verify_token(app, bearer) is None, "a revoked token"
    assert verify_token(app, other_bearer) == Principal(other.id, other.label, "auditor", None)


@pytest.mark.parametrize(
    ("role", "options", "field", "says"),
    [
        ("receiver", {}, "program", "a receiver token needs --program"),
        ("coordinator", {"program": PROGRAM}, "program", "names the receiving program and is for receiver tokens"),
        ("operator", {"program": PROGRAM}, "program", "is for receiver tokens"),
        ("admin", {}, "role", "is not one of coordinator, receiver, operator, auditor"),
        ("receiver", {"program": "Main St\nResidential"}, "program", "one line"),
        ("receiver", {"program": " Main St"}, "program", "starts or ends with a space"),
        ("receiver", {"program": ""}, "program", "is empty"),
        ("operator", {"label": "x" * 81}, "label", "at most 80"),
        ("operator", {"label": "night\ndesk"}, "label", "one line"),
        ("operator", {"label": "tok-1a2b3c4d"}, "label", "looks like a token id"),
        ("operator", {"label": "Intake desk"}, "label", "is the label of another active token"),
    ],
)
def test_a_refused_token_changes_nothing(app: App, role: str, options: dict[str, str], field: str, says: str) -> None:
    create_token(app, "coordinator", label="Intake desk")
    before = counts(app)
    with pytest.raises(InvalidInput) as refused:
        create_token(app, role, **options)
    assert refused.value.field == field and says in str(refused.value) and "\n" not in str(refused.value)
    assert counts(app) == before


def test_concurrent_creations_with_one_label_give_one_token(app: App) -> None:
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def create() -> None:
        start.wait()
        try:
            create_token(app, "operator", label="Night desk")
            outcomes.append("created")
        except InvalidInput as exc:
            outcomes.append(exc.field)

    workers = [threading.Thread(target=create) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(outcomes) == ["created", "label", "label", "label"]
    assert [t.label for t in list_tokens(app)] == ["Night desk"]
    assert counts(app)["audit"] == 1


def test_list_is_newest_first_and_revoking_is_by_id_or_label_once(app: App) -> None:
    first, _ = create_token(app, "operator", label="Ops")
    advance(app, timedelta(minutes=1))
    second, _ = create_token(app, "receiver", program=PROGRAM, label="Main St")
    assert [t.id for t in list_tokens(app)] == [second.id, first.id]

    advance(app, timedelta(minutes=1))
    revoked = revoke_token(app, "Ops")
    assert (revoked.id, revoked.revoked_at) == (first.id, app.clock.now())
    assert revoke_token(app, second.id).revoked_at == app.clock.now()
    assert [t.revoked_at is not None for t in list_tokens(app)] == [True, True]

    before = counts(app)
    for name, says in ((first.id, "was already revoked on"), ("Ops", "was already revoked"), ("Nobody", "no token")):
        with pytest.raises(EventRejected, match=says):
            revoke_token(app, name)
    assert counts(app) == before

    again, _ = create_token(app, "operator", label="Ops")  # a revoked token's label is free again
    assert revoke_token(app, "Ops").id == again.id
    with Session(app.engine) as session:
        actions = [a.action for a in store.audit_tail(session, None)]
    assert actions == [
        "token.created",
        "token.created",
        "token.revoked",
        "token.revoked",
        "token.created",
        "token.revoked",
    ]


def test_last_used_is_written_at_most_once_a_minute(app: App) -> None:
    info, bearer = create_token(app, "operator")

    def last_used() -> object:
        with Session(app.engine) as session:
            record = store.get_api_token(session, info.id)
            assert record is not None
            return record.last_used_at

    assert last_used() is None
    verify_token(app, bearer)
    first = app.clock.now()
    assert last_used() == first
    advance(app, timedelta(seconds=30))
    verify_token(app, bearer)
    assert last_used() == first
    advance(app, timedelta(seconds=30))
    verify_token(app, bearer)
    assert last_used() == app.clock.now()


# ------------------------------------------------------------------------------------------------------- CLI


def test_the_cli_prints_a_token_once_and_never_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAREPATH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAREPATH_DATABASE_URL", raising=False)
    assert main(["token", "create", "--role", "receiver", "--program", PROGRAM, "--name", "Main St"]) == 0
    out = capsys.readouterr().out
    bearer = out.splitlines()[-1]
    assert bearer.startswith("cpt_") and out.count(bearer) == 1
    assert "will not be shown again" in out
    token_id = "tok-" + bearer.split("_")[1]
    assert f"created {token_id}: label Main St, role receiver, program {PROGRAM}" in out

    app = inline_app(Settings.from_env(), ManualClock())
    try:
        assert verify_token(app, bearer) == Principal(token_id, "Main St", "receiver", PROGRAM)
        with Session(app.engine) as session:
            record = store.get_api_token(session, token_id)
        assert record is not None
        secret, digest = bearer.split("_", 2)[2], record.secret_sha256

        assert main(["token", "create", "--role", "auditor"]) == 0
        capsys.readouterr()
        assert main(["token", "list"]) == 0
        listed = capsys.readouterr().out
        lines = listed.splitlines()
        assert lines[0].split() == ["ID", "LABEL", "ROLE", "PROGRAM", "CREATED", "STATE"] and len(lines) == 3
        assert token_id in listed and PROGRAM in listed and "active" in listed
        assert secret not in listed and digest not in listed and "cpt_" not in listed

        assert main(["token", "revoke", "Main St"]) == 0
        assert capsys.readouterr().out.strip() == f"revoked {token_id}: label Main St, role receiver, program {PROGRAM}"
        assert verify_token(app, bearer) is None
        assert main(["token", "list"]) == 0
        assert "revoked " in capsys.readouterr().out

        for argv, says in (
            (["token", "revoke", "Main St"], "error: token 'Main St' was already revoked"),
            (["token", "revoke", "tok-00000000"], "error: no token 'tok-00000000'"),
            (["token", "create", "--role", "receiver"], "error: program: a receiver token needs --program"),
            (["token", "create", "--role", "operator", "--program", PROGRAM], "error: program: names the receiving"),
            (["token", "create", "--role", "root"], "error: role: 'root' is not one of"),
        ):
            assert main(argv) == 1
            captured = capsys.readouterr()
            assert captured.out == "" and captured.err.startswith(says) and captured.err.count("\n") == 1
    finally:
        app.close()


# ----------------------------------------------------------------------------------------------- idempotency

DIGEST = request_digest("POST", "/episodes/ep-1a2b3c4d/events", b'{"event": "detox.completed"}')
KEY = "7d0f3c52-9a1e-4b8e-a3d2-5c6f1e0b9a47"


def test_a_claim_left_by_a_dead_process_is_taken_over_once_stale(app: App) -> None:
    token, _ = create_token(app, "coordinator")
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("new")  # ... and the process died here
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(CLAIM_STALE - timedelta(seconds=1))
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("in-progress")  # maybe still running
    clock.advance(timedelta(seconds=2))
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("new")  # the retry runs it again
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("in-progress")  # and owns it now
    finish_request(app, token.id, KEY, 200, {"ok": True})
    clock.advance(CLAIM_STALE * 10)
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("replay", 200, {"ok": True})  # finished: kept


def test_a_key_is_new_then_in_progress_then_replayed(app: App) -> None:
    token, _ = create_token(app, "coordinator")
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("new")
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("in-progress")
    other = request_digest("POST", "/episodes/ep-1a2b3c4d/events", b'{"event": "detox.left"}')
    assert claim_request(app, token.id, KEY, other) == Claim("mismatch")

    body = {"episode_id": "ep-1a2b3c4d", "status": "applied", "stage": "residential"}
    finish_request(app, token.id, KEY, 201, body)
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("replay", 201, body)
    assert claim_request(app, token.id, KEY, other) == Claim("mismatch")
    release_request(app, token.id, KEY)  # a finished request keeps its response
    assert claim_request(app, token.id, KEY, DIGEST) == Claim("replay", 201, body)
    with pytest.raises(StoreError, match="has a finished response"):
        finish_request(app, token.id, KEY, 500, None)

    another, _ = create_token(app, "coordinator")
    assert claim_request(app, another.id, KEY, DIGEST) == Claim("new"), "keys are per token"


def test_a_released_claim_is_new_again(app: App) -> None:
    token, _ = create_token(app, "coordinator")
    assert claim_request(app, token.id, "retry-1", DIGEST).kind == "new"
    release_request(app, token.id, "retry-1")
    assert claim_request(app, token.id, "retry-1", DIGEST).kind == "new"
    finish_request(app, token.id, "retry-1", 204, None)
    assert claim_request(app, token.id, "retry-1", DIGEST) == Claim("replay", 204, None)
    with pytest.raises(StoreError, match="has no claim"):
        finish_request(app, token.id, "never-claimed", 200, {})


@pytest.mark.parametrize(
    ("key", "digest", "field"),
    [
        ("", DIGEST, "Idempotency-Key"),
        ("k\n1", DIGEST, "Idempotency-Key"),
        ("k" * 129, DIGEST, "Idempotency-Key"),
        (KEY, "not-a-digest", "digest"),
        (KEY, DIGEST.upper(), "digest"),
    ],
)
def test_a_bad_key_or_digest_is_refused_changing_nothing(app: App, key: str, digest: str, field: str) -> None:
    token, _ = create_token(app, "coordinator")
    before = counts(app)
    with pytest.raises(InvalidInput) as refused:
        claim_request(app, token.id, key, digest)
    assert refused.value.field == field
    assert counts(app) == before


def test_concurrent_claims_of_one_key_give_exactly_one_new(app: App) -> None:
    token, _ = create_token(app, "coordinator")
    threads, start = 8, threading.Barrier(8)
    kinds: list[str] = []
    errors: list[BaseException] = []

    def claim() -> None:
        start.wait()
        try:
            kinds.append(claim_request(app, token.id, KEY, DIGEST).kind)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=claim) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert sorted(kinds) == ["in-progress"] * (threads - 1) + ["new"]


# ------------------------------------------------------------------------------------------------- migration


def test_0005_upgrades_a_0004_database_and_downgrades_cleanly(empty_engine: Engine) -> None:
    upgrade_to(empty_engine, "0004")
    store.migrate(empty_engine)
    with empty_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), store.metadata) == []
    downgrade_to(empty_engine, "0004")
    assert not {"api_token", "api_request"} & set(inspect(empty_engine).get_table_names())
    store.migrate(empty_engine)
