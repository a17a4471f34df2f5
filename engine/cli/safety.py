"""The safety-core commands: ``handoff``, ``auth``, ``consent``, ``revoke``, ``disclosures``, ``meds``,
``intentional``, ``ack``.

Front-ends only: every change is a use case of :mod:`engine.app` (an event applied and followed up, exactly like
``carepath event``).
"""

from __future__ import annotations

import argparse

from engine.cli.episodes import cli_app, report_event
from engine.cli.registry import command
from engine.episode.domain.handoff_terms import ACTIONS, PARTIES
from engine.errors import CarepathError, quote
from engine.language.builtins import AUTHORIZATION_EVENTS, HANDOFF_STEPS

__all__ = ["parse_medication"]


# ----------------------------------------------------------------------------------------------- handoff


def _handoff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE")
    p.add_argument(
        "action",
        metavar="ACTION",
        help=f"{', '.join(ACTIONS[:-1])} or {ACTIONS[-1]} (checked against the handoff's state and your party)",
    )
    p.add_argument("--as", dest="party", choices=PARTIES, default="receiver", help="who moves it")
    p.add_argument("--reason", help="why (decline, hold, fail, cancel need one)")
    p.add_argument("--at", dest="appointment_at", metavar="TIME", help="appointment time for 'schedule' (ISO 8601)")
    p.add_argument("--outcome", help="the receiver's outcome, for 'return-outcome'")
    p.add_argument("--handoff", metavar="ID", help="which handoff, when more than one is open")
    p.add_argument("--id", dest="event_id", metavar="EVENT_ID", help="idempotency id")


#: ``carepath handoff``'s summary: the receiver's moves that meet the pathway's steps first.
HANDOFF_HELP = (
    f"move a handoff along its closed loop ({', '.join(step.move for step in HANDOFF_STEPS)}, decline, no-show ...)"
)


@command("handoff", HANDOFF_HELP, _handoff_args)
def _handoff(args: argparse.Namespace) -> int:
    from engine.app import record_event

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
    return report_event(record_event(cli_app(), args.episode, "handoff.move", data, event_id=args.event_id))


# ------------------------------------------------------------------------------------------- authorization

#: ``carepath auth`` actions and the built-in event each records.
AUTH_EVENTS = {move: event for event, move in AUTHORIZATION_EVENTS.items()}


def _auth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE")
    p.add_argument(
        "action",
        choices=tuple(AUTH_EVENTS),
        help="request (again after a denial, or before the move with --to), approve, or deny (needs --reason)",
    )
    p.add_argument("--reason", help="why it was denied (kept in the store; alerts carry only the pathway's words)")
    p.add_argument("--to", metavar="STAGE", help="the stage the move admits to (to request before the move)")
    p.add_argument("--handoff", metavar="ID", help="which handoff's authorization, when more than one is open")
    p.add_argument("--id", dest="event_id", metavar="EVENT_ID", help="idempotency id")


@command(
    "auth", "record an insurance authorization: requested, approved or denied (admission waits for it)", _auth_args
)
def _auth(args: argparse.Namespace) -> int:
    from engine.app import record_event

    data = {k: v for k, v in {"reason": args.reason, "to": args.to, "handoff": args.handoff}.items() if v}
    event = AUTH_EVENTS[args.action]
    return report_event(record_event(cli_app(), args.episode, event, data, event_id=args.event_id))


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
    from engine.app.safety import consent_from_form, record_consent

    app = cli_app()
    form = {
        "id": args.consent_id,
        "discloser": args.discloser,
        "information": args.information,
        "recipients": args.recipient,
        "recipient_classes": args.classes,
        "purposes": args.purpose,
        "expires": args.expires,
        "signed_on": args.signed_on,
        "signed_by": args.signed_by,
    }
    return report_event(record_consent(app, args.episode, consent_from_form(app, args.episode, form)))


def _revoke_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("consent", metavar="CONSENT")
    p.add_argument("--written", action="store_true", help="the revocation is in writing (required by Part 2)")


@command("revoke", "revoke a consent (in writing): pending and future disclosures under it stop", _revoke_args)
def _revoke(args: argparse.Namespace) -> int:
    from engine.app.safety import revoke_consent

    results = revoke_consent(cli_app(), args.consent, written=args.written)
    for result in results:
        report_event(result)
    print(f"consent {args.consent} revoked; {len(results)} active episode(s) updated")
    return 0


def _disclosures_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE")


@command("disclosures", "the accounting of disclosures for an episode's person (past 3 years)", _disclosures_args)
def _disclosures(args: argparse.Namespace) -> int:
    from engine.app.safety import disclosures
    from engine.cli.render import render_table

    rows = [
        {
            "at": f"{d.at:%Y-%m-%d %H:%M}",
            "to": d.recipient,
            "purpose": d.purpose,
            "consent": d.consent_id,
            "what": d.what,
        }
        for d in disclosures(cli_app(), args.episode)
    ]
    print(render_table(rows) if rows else "no disclosures")
    if rows:
        print("each disclosure carried the 42 CFR 2.32 notice prohibiting redisclosure")
    return 0


# -------------------------------------------------------------------------------------------- medications


def parse_medication(text: str) -> dict[str, str]:
    """``"buprenorphine|16 mg|sublingual|daily|1819"`` -> name, dose, route, frequency, rxnorm (trailing optional)."""
    parts = [p.strip() for p in text.split("|")]
    keys = ("name", "dose", "route", "frequency", "rxnorm")
    if not parts[0]:
        raise CarepathError(f"--med {quote(text)}: a medication needs a name (NAME|DOSE|ROUTE|FREQUENCY|RXNORM)")
    if len(parts) > len(keys):
        raise CarepathError(
            f"--med {quote(text)}: {len(parts)} fields, at most {len(keys)} (NAME|DOSE|ROUTE|FREQUENCY|RXNORM)"
        )
    return {k: v for k, v in zip(keys, parts, strict=False) if v}


def _meds_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE")
    p.add_argument("side", choices=("sending", "receiving"), help="discharge list (sending) or admission (receiving)")
    p.add_argument("--med", action="append", default=[], metavar="NAME|DOSE|ROUTE|FREQ|RXNORM", help="one medication")


@command("meds", "record a setting's medication list; with both in, they are reconciled", _meds_args)
def _meds(args: argparse.Namespace) -> int:
    from engine.app.safety import record_medications
    from engine.app.views import discrepancy_rows
    from engine.cli.render import render_table

    meds = [parse_medication(m) for m in args.med]
    app = cli_app()
    report_event(record_medications(app, args.episode, args.side, meds))
    rows = discrepancy_rows(app.engine, args.episode)
    print(render_table(rows) if rows else "no discrepancies recorded for this stage visit")
    return 0


def _intentional_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("discrepancy", metavar="DISCREPANCY")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", required=True, metavar="CLINICIAN_ID")


@command("intentional", "document a medication discrepancy as intentional (clinician)", _intentional_args)
def _intentional(args: argparse.Namespace) -> int:
    from engine.app.safety import mark_intentional

    mark_intentional(cli_app(), args.discrepancy, args.reason, args.by)
    print(f"{args.discrepancy}: intentional ({args.reason})")
    return 0


def _ack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("escalation", type=int, metavar="ESCALATION", help="escalation number (see carepath status)")
    p.add_argument("--by", required=True, metavar="STAFF_ID")


@command("ack", "acknowledge an escalation: the next rung of its ladder does not fire", _ack_args)
def _ack(args: argparse.Namespace) -> int:
    from engine.app import acknowledge

    stopped = acknowledge(cli_app(), args.escalation, args.by)
    print(f"escalation {args.escalation} acknowledged; {stopped} later rung(s) stopped")
    return 0


# ---------------------------------------------------------------------------------------------------- fhir


def _fhir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("export",), help="export: print an episode as a FHIR R4 Bundle (collection)")
    p.add_argument("episode", metavar="EPISODE")


@command("fhir", "print an episode as a FHIR R4 Bundle, as GET /fhir/R4/CarePlan/EP/$everything returns it", _fhir_args)
def _fhir(args: argparse.Namespace) -> int:
    import json

    from engine.api.fhir_r4 import everything
    from engine.app.access import Principal

    local = Principal(token_id="cli", label="cli", role="coordinator")  # whoever runs the CLI holds the store
    print(json.dumps(everything(cli_app(), local, args.episode), indent=2))
    return 0
