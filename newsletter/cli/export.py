"""`newsletter export …`: the papers as the seed's Markdown page, or as the JSON behind it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from newsletter import store
from newsletter.cli.common import NewsletterGroup, console, day_option, open_session
from newsletter.config import get_settings
from newsletter.intake.subscribers import normalise_language
from newsletter.publish.export import Export, build_export, to_json, to_markdown

app = typer.Typer(
    cls=NewsletterGroup,
    no_args_is_help=True,
    help="Export the papers: the seed's Markdown page, or its data as JSON.",
)

Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
]
Language = Annotated[
    str | None,
    typer.Option("--lang", help="Show abstracts in this language where a translation is stored."),
]
Topics = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="Only this topic (repeat).")
]
Limit = Annotated[
    int | None, typer.Option("--limit", min=1, help="At most this many papers per topic.")
]
Updated = Annotated[
    datetime | None,
    day_option(
        "--date",
        help="The 'Updated on' date, YYYY-MM-DD (default: today in NEWSLETTER_TIMEZONE).",
    ),
]


def _export_command(write: Callable[[Export], str]) -> Callable[..., None]:
    """A command that exports the papers with `write`: every format takes the same options."""

    def export(
        output: Output = None,
        lang: Language = None,
        topic: Topics = None,
        limit: Limit = None,
        day: Updated = None,
    ) -> None:
        updated = day.date() if day is not None else get_settings().today()
        with open_session() as session:
            topics = store.get_topics(session, topic) if topic else None
            data = build_export(
                session,
                updated=updated,
                language=normalise_language(lang) if lang else "en",
                topics=topics,
                limit=limit,
            )
        text = write(data)
        if output is None:
            typer.echo(text, nl=False)
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        count = sum(len(t.papers) for t in data.topics)
        console.print(f"Wrote {count} paper(s) in {len(data.topics)} topic(s) to {output}.")

    return export


markdown = app.command(
    "markdown",
    help="""Write every topic's papers as one Markdown page, the cv-arxiv-daily format.

    Example: newsletter export markdown -o docs/index.md --lang zh
    """,
)(_export_command(to_markdown))

json_ = app.command(
    "json",
    help="""Write the data behind the Markdown page as JSON.

    Example: newsletter export json -o docs/papers.json
    """,
)(_export_command(to_json))
