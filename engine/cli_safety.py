"""The safety-core commands: ``handoff``, ``consent``, ``revoke``, ``disclosures``, ``meds``, ``intentional``, ``ack``.

Every change goes through the store and then the pathway's event flow (so its deadlines are scheduled and its
artifact refreshed), exactly like ``carepath event``.
"""

from __future__ import annotations

import argparse
from datetime import date

from engine.cli import command
from engine.cli_episodes import run_event
from engine.errors import CarepathError

__all__ = ["parse_medication"]


def _rt():
    from engine.runtime import runtime_from_env

    return runtime_from_env()


def _report(rt: object, episode_id: str, state: object) -> int:
    episode = rt.service.episode(episode_id)  # type: ignore[attr-defined]
    print(f"{episode_id}: {getattr(state, 'message', '') or 'applied'}; stage {episode.stage} ({episode.status})")
    return 0


# ----------------------------------------------------------------------------------------------- handoff


def _handoff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE")
    p.add_argument(
        "action",
        metavar="ACTION",
        help="send, receive, accept, decline, schedule, no-show, keep, cancel-visit, return-outcome, hold, resume, "
        "fail or cancel (checked against the handoff's state and your party)",
    )
    p.add_argument("--as", dest="party", choices=("sender", "receiver"), default="receiver", help="who moves it")
    p.add_argument("--reason", help="why (decline, hold, fail, cancel need one)")
    p.add_argument("--at", dest="appointment_at", metavar="TIME", help="appointment time for 'schedule' (ISO 8601)")
    p.add_argument("--outcome", help="the receiver's outcome, for 'return-outcome'")
    p.add_argument("--handoff", metavar="ID", help="which handoff, when more than one is open")
    p.add_argument("--id", dest="event_id", metavar="EVENT_ID", help="idempotency id")


@command(
    "handoff", "move a handoff along its closed loop (accept, schedule, keep, decline, no-show ...)", _handoff_args
)
def _handoff(args: argparse.Namespace) -> int:
    rt = _rt()
    data = {
        k: v
        for k, v in {
            "action": args.action,
            "party": args.party,
            "reason": args.reason,
            "appointment_at": args.appointment_at,
            "outcome": args.outcome,
            "handoff": args.handoff,
        }.items()
        if v
    }
    return _report(rt, args.episode, run_event(rt, args.episode, "handoff.move", data, args.event_id))


# ----------------------------------------------------------------------------------------------- consent


def _consent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", help="the episode whose person signed")
    p.add_argument("--id", dest="consent_id", required=True, help="the consent form's id, e.g. cn-2026-0042")
    p.add_argument("--purpose", action="append", required=True, help="treatment, payment, family-involvement ...")
    p.add_argument("--recipient", action="append", default=[], help="a named recipient (program or person)")
    p.add_argument("--class", dest="classes", action="append", default=[], help="a class, e.g. treating-providers")
    p.add_argument("--information", required=True, help="what may be disclosed, specifically")
    p.add_argument("--discloser", required=True, help="the program that may disclose")
    p.add_argument("--expires", default="end-of-treatment", help="a date, end-of-treatment (default) or none")
    p.add_argument("--signed-on", required=True, metavar="DATE", help="signature date, YYYY-MM-DD")
    p.add_argument("--signed-by", required=True, metavar="ID", help="who signed (opaque id)")


@command("consent", "record a 42 CFR Part 2 consent; handoffs waiting for it are sent", _consent_args)
def _consent(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from engine.domain.consent import Consent

    rt = _rt()
    rt.require_api()
    try:
        consent = Consent(
            id=args.consent_id,
            patient=rt.service.episode(args.episode).person_ref,
            discloser=args.discloser,
            information=args.information,
            recipients=tuple(args.recipient),
            recipient_classes=tuple(args.classes),
            purposes=tuple(args.purpose),
            expires=args.expires if args.expires in ("end-of-treatment", "none") else date.fromisoformat(args.expires),
            signed_on=date.fromisoformat(args.signed_on),
            signed_by=args.signed_by,
        )
    except (ValidationError, ValueError) as exc:
        raise CarepathError(f"consent: {str(exc).splitlines()[0]}") from exc
    rt.service.add_consent(args.episode, consent)
    return _report(rt, args.episode, run_event(rt, args.episode, "consent.recorded", {"consent": consent.id}, None))


def _revoke_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("consent", metavar="CONSENT")
    p.add_argument("--written", action="store_true", help="the revocation is in writing (required by Part 2)")


@command("revoke", "revoke a consent (in writing): pending and future disclosures under it stop", _revoke_args)
def _revoke(args: argparse.Namespace) -> int:
    rt = _rt()
    rt.require_api()
    episodes = rt.service.revoke_consent(args.consent, written=args.written)
    for episode_id in episodes:
        _report(rt, episode_id, run_event(rt, episode_id, "consent.revoked", {"consent": args.consent}, None))
    print(f"consent {args.consent} revoked; {len(episodes)} active episode(s) updated")
    return 0


def _disclosures_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE")


@command("disclosures", "the accounting of disclosures for an episode's person (past 3 years)", _disclosures_args)
def _disclosures(args: argparse.Namespace) -> int:
    from engine.views import render_table

    rows = [
        {
            "at": f"{d.at:%Y-%m-%d %H:%M}",
            "to": d.recipient,
            "purpose": d.purpose,
            "consent": d.consent_id,
            "what": d.what,
        }
        for d in _rt().service.disclosures(args.episode)
    ]
    print(render_table(rows) if rows else "no disclosures")
    if rows:
        print("each disclosure carried the 42 CFR 2.32 notice prohibiting redisclosure")
    return 0


# -------------------------------------------------------------------------------------------- medications


def parse_medication(text: str) -> dict[str, str]:
    """``"buprenorphine|16 mg|sublingual|daily|1819"`` -> name, dose, route, frequency, rxnorm (trailing optional)."""
    parts = [p.strip() for p in text.split("|")]
    if not parts[0]:
        raise CarepathError(f"--med {text!r}: a medication needs a name (NAME|DOSE|ROUTE|FREQUENCY|RXNORM)")
    keys = ("name", "dose", "route", "frequency", "rxnorm")
    return {k: v for k, v in zip(keys, parts, strict=False) if v}


def _meds_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE")
    p.add_argument("side", choices=("sending", "receiving"), help="discharge list (sending) or admission (receiving)")
    p.add_argument("--med", action="append", default=[], metavar="NAME|DOSE|ROUTE|FREQ|RXNORM", help="one medication")


@command("meds", "record a setting's medication list; with both in, they are reconciled", _meds_args)
def _meds(args: argparse.Namespace) -> int:
    rt = _rt()
    meds = [parse_medication(m) for m in args.med]
    state = run_event(rt, args.episode, f"medications.{args.side}-list", {"medications": meds}, None)
    _report(rt, args.episode, state)
    from engine.views import discrepancy_rows, render_table

    rows = discrepancy_rows(rt.engine, args.episode)
    print(render_table(rows) if rows else "no discrepancies recorded for this stage visit")
    return 0


def _intentional_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("discrepancy", metavar="DISCREPANCY")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", required=True, metavar="CLINICIAN_ID")


@command("intentional", "document a medication discrepancy as intentional (clinician)", _intentional_args)
def _intentional(args: argparse.Namespace) -> int:
    _rt().service.mark_intentional(args.discrepancy, args.reason, args.by)
    print(f"{args.discrepancy}: intentional ({args.reason})")
    return 0


def _ack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("escalation", type=int, metavar="ESCALATION", help="escalation number (see carepath status)")
    p.add_argument("--by", required=True, metavar="STAFF_ID")


@command("ack", "acknowledge an escalation: the next rung of its ladder does not fire", _ack_args)
def _ack(args: argparse.Namespace) -> int:
    rt = _rt()
    runs = rt.service.acknowledge(args.escalation, args.by)
    if runs and rt.api_url():
        rt.require_api()  # before Prefect is imported
        from engine.orchestrate import cancel_runs
        from engine.prefect_ops import run_sync

        run_sync(cancel_runs(runs))
    print(f"escalation {args.escalation} acknowledged; {len(runs)} later rung(s) stopped")
    return 0
