"""`newsletter tokens …`: the tokens programs present to the JSON API, and their scopes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import NewsletterGroup, console, err_console, open_session, print_json
from newsletter.intake.api_tokens import SCOPES

app = typer.Typer(
    cls=NewsletterGroup, help="API tokens: create one per program, with the scopes it needs."
)

SCOPE_HELP = f"A scope the token grants (repeat): {', '.join(SCOPES)}, or * for all."


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="Which program holds it (unique).")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help=SCOPE_HELP)],
) -> None:
    """Create an API token and print it, once: only its SHA-256 is kept.

    Example: newsletter tokens create --name lab-site --scope subscribers:write
    """
    with open_session() as session:
        token, secret = store.create_api_token(session, name, scope)
        scopes = " ".join(token.scopes)
    console.print(secret)
    err_console.print(
        f"Token {name!r} ({scopes}): copy it now, it is not shown again."
        " Send it as `Authorization: Bearer <token>`."
    )


@app.command("list")
def list_(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the tokens: name, scopes, when made, last used and revoked (never the token).

    Example: newsletter tokens list --json
    """
    with open_session() as session:
        rows = [
            {
                "name": token.name,
                "scopes": token.scopes,
                "created_at": _when(token.created_at),
                "last_used_at": _when(token.last_used_at),
                "revoked_at": _when(token.revoked_at),
            }
            for token in store.list_api_tokens(session)
        ]
    if json:
        print_json(rows)
        return
    table = Table("Name", "Scopes", "Created", "Last used", "Revoked")
    for row in rows:
        table.add_row(
            row["name"],
            " ".join(row["scopes"]),
            row["created_at"],
            row["last_used_at"] or "never",
            row["revoked_at"] or "",
        )
    console.print(table)


def _when(moment) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


@app.command()
def revoke(name: str) -> None:
    """Revoke a token: every request with it is refused (401) from now on.

    Example: newsletter tokens revoke lab-site
    """
    with open_session() as session:
        store.revoke_api_token(session, name)
    console.print(f"Revoked token {name!r}.")
