"""`newsletter translate …`: fill in missing translations, or try the translator on one text."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from newsletter.cli.common import (
    NewsletterGroup,
    console,
    day_option,
    err_console,
    progress_bar,
    ready_settings,
)
from newsletter.intake.subscribers import normalise_language
from newsletter.translate import (
    CheckedTranslator,
    SourceText,
    step,
    system_names,
    translation_language,
)

app = typer.Typer(cls=NewsletterGroup, invoke_without_command=True)


def _language(code: str | None) -> str | None:
    return normalise_language(code) if code is not None else None


@app.callback()
def translate(
    ctx: typer.Context,
    lang: Annotated[
        str | None,
        typer.Option("--lang", "-l", help="Only this language (BCP-47), for every stored paper."),
    ] = None,
    since: Annotated[
        datetime | None,
        day_option(
            "--since",
            help="Only papers first seen on or after this date (YYYY-MM-DD, NEWSLETTER_TIMEZONE).",
        ),
    ] = None,
) -> None:
    """Translate stored abstracts that have no translation yet in the subscribers' languages.

    Without --lang: each language active subscribers read, for the papers of their topics.
    Exits with 1 when some abstracts could not be translated (they stay in English).
    Example: newsletter translate --lang zh --since 2026-11-01
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = ready_settings()
    translator = step.require_translator(settings)
    # The start of that day in NEWSLETTER_TIMEZONE, the zone of every other date here.
    start = since.replace(tzinfo=settings.zone) if since is not None else None
    work = step.pending_for_stored(settings, _language(lang), start)
    if not work:
        console.print("Nothing to translate: every abstract asked for is translated.")
        return
    with progress_bar("Translating") as bar:
        task = bar.add_task("translate", total=len(work))
        report = step.translate_work(
            settings, translator, work, progress=lambda n: bar.advance(task, n)
        )
    console.print(report.summary())
    for (arxiv_id, language), outcome in sorted(report.failed.items()):
        err_console.print(f"Not translated: {arxiv_id} ({language}): {outcome.problem}")
    if report.failed:
        raise typer.Exit(code=1)


@app.command("text")
def text(
    source: Annotated[str, typer.Argument(help="The English text to translate.")],
    lang: Annotated[str, typer.Option("--lang", "-l", help="The language to translate into.")],
    title: Annotated[
        str, typer.Option("--title", help="The paper's title, whose system name is kept as is.")
    ] = "",
) -> None:
    """Translate one text with the configured translator and print it (to try a provider).

    The text is masked and checked exactly as abstracts are; exits with 1 when it fails.
    Example: newsletter translate text "We propose \\method{}, see https://example.org" --lang zh
    """
    settings = ready_settings()
    language = normalise_language(lang)
    target = translation_language(language)
    if target is None:
        console.print(source)
        return
    checked = CheckedTranslator(step.require_translator(settings), batch_size=1)
    names = system_names(title) if title else ()
    (outcome,) = checked.translate([SourceText(0, source, names)], target)
    if outcome.text is None:
        err_console.print(f"Error: no usable translation ({outcome.failure}): {outcome.problem}")
        raise typer.Exit(code=1)
    console.print(outcome.text)
