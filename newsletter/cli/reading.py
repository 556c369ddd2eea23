"""`newsletter subscribers library|seed`: a reader's reading list, and the papers that start
their ranking. Registered on the `subscribers` group (see `subscribers.py`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import console, err_console, open_session
from newsletter.config import get_settings
from newsletter.errors import InvalidInput


def library(
    email: str,
    bibtex: Annotated[
        bool, typer.Option("--bibtex", help="Print the library as BibTeX instead of a table.")
    ] = False,
) -> None:
    """Show the papers a reader saved, newest saved first, or print them as BibTeX.

    Example: newsletter subscribers library ada@example.org --bibtex > ada.bib
    """
    with open_session() as session:
        subscriber = store.get_subscriber(session, email)
        saved = store.saved_papers(session, subscriber.id)
        if bibtex:
            from newsletter.publish.bibtex import library_bibtex

            sys.stdout.write(library_bibtex(paper for paper, _saved_at in saved))
            return
        # Here, not above: this module is imported with every `subscribers` command, and the
        # titles' LaTeX reader (pylatexenc) costs `subscribers list` ~25 ms of CPU.
        from newsletter.textfmt import authors_line, readable_title

        table = Table("Saved", "arXiv", "Title", "Authors")
        for paper, saved_at in saved:
            table.add_row(
                saved_at.date().isoformat(),
                paper.arxiv_id,
                readable_title(paper.title),
                authors_line(paper.authors),
            )
    console.print(table)
    console.print(f"{len(saved)} saved paper(s)")


def seed(
    email: str,
    ids: Annotated[
        list[str] | None,
        typer.Argument(help="arXiv ids or links: 2405.01234, arXiv:hep-th/9901001v2, …"),
    ] = None,
    bibtex: Annotated[
        Path | None,
        typer.Option("--bibtex", help="A BibTeX file (a Zotero or Google Scholar export)."),
    ] = None,
) -> None:
    """Start a reader's ranking from papers they know: arXiv ids, or a BibTeX file's entries,
    matched to arXiv by eprint id, DOI or exact title. Each entry is reported.

    Example: newsletter subscribers seed ada@example.org 1706.03762 --bibtex zotero.bib
    """
    if not ids and bibtex is None:
        raise InvalidInput("name papers: arXiv ids, or --bibtex FILE (or both)")
    # Imported here: `subscribers`, whose commands these are, must not pay for arXiv's client.
    from newsletter.daily.seeds import seed_reader
    from newsletter.intake.seeds import seeds_from_bibtex, seeds_from_ids
    from newsletter.sources.lookup import Outcome

    seeds, problems = seeds_from_ids(ids or ())
    if bibtex is not None:
        try:
            text = bibtex.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInput(f"{bibtex}: cannot read it as UTF-8 text ({error})") from error
        more_seeds, more_problems = seeds_from_bibtex(text, str(bibtex))
        seeds += more_seeds
        problems += more_problems
    report = seed_reader(get_settings(), email, seeds, problems)
    for entry in report.entries:
        found = f"{entry.arxiv_id} (by {entry.how})" if entry.arxiv_id else ""
        line = f"{entry.outcome.value:<10} {entry.label}  {found or entry.detail}".rstrip()
        (console if entry.outcome == Outcome.matched else err_console).print(line)
    counts = ", ".join(
        f"{report.count(outcome)} {outcome.value}" for outcome in Outcome if report.count(outcome)
    )
    console.print(f"{counts or 'nothing given'}; {report.newly_marked} new seed(s) for {email}.")
    if not report.ok:
        raise typer.Exit(code=1)
