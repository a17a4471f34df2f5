"""``carepath token create|list|revoke``: the bearer tokens the HTTP API accepts.

Front-ends only: each calls a use case of :mod:`engine.app.tokens`. A token's text is printed once, by ``create``;
nothing prints it, or its hash, again.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from engine.cli.episodes import cli_app
from engine.cli.registry import command

if TYPE_CHECKING:
    from engine.app.tokens import TokenInfo

__all__: list[str] = []

_ROLES_HELP = (
    "coordinator (everything of this store's episodes), receiver (only the handoffs addressed to its --program, "
    "never person ids), operator (read-only, no person ids) or auditor (the accounting of disclosures)"
)


def _token_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="issue a token (its text is shown once)", description=_ROLES_HELP)
    create.add_argument("--role", required=True, metavar="ROLE", help=_ROLES_HELP)
    create.add_argument("--program", metavar="NAME", help="the receiving program a receiver token speaks for")
    create.add_argument(
        "--name", dest="label", metavar="LABEL", help="the token's label (default ROLE-ID), shown in the audit trail"
    )
    sub.add_parser("list", help="every token, revoked ones included (never a secret)")
    revoke = sub.add_parser("revoke", help="revoke a token: requests bearing it are refused from now on")
    revoke.add_argument("token", metavar="ID_OR_LABEL")


@command("token", "issue, list and revoke the bearer tokens of the HTTP API", _token_args)
def _token(args: argparse.Namespace) -> int:
    from engine.app import tokens

    app = cli_app()
    if args.action == "create":
        info, text = tokens.create_token(app, args.role, program=args.program, label=args.label)
        print(f"created {_describe(info)}")
        print("the token follows; it will not be shown again (Carepath keeps only its hash), so store it now:")
        print(text)
    elif args.action == "revoke":
        info = tokens.revoke_token(app, args.token)
        print(f"revoked {_describe(info)}")
    else:
        _print_list(tokens.list_tokens(app))
    return 0


def _describe(info: TokenInfo) -> str:
    program = f", program {info.program}" if info.program else ""
    return f"{info.id}: label {info.label}, role {info.role}{program}"


def _print_list(infos: list[TokenInfo]) -> None:
    from engine.app.views import fmt
    from engine.cli.render import render_table

    rows = [
        {
            "id": t.id,
            "label": t.label,
            "role": t.role,
            "program": t.program or "-",
            "created": fmt(t.created_at),
            "state": f"revoked {fmt(t.revoked_at)}" if t.revoked_at else "active",
        }
        for t in infos
    ]
    print(render_table(rows) if rows else "no tokens (create one with carepath token create --role ROLE)")
