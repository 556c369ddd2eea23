"""`newsletter topics …`: define what each topic matches on arXiv."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import (
    NewsletterGroup,
    console,
    err_console,
    open_session,
    print_json,
)
from newsletter.config import get_settings
from newsletter.daily.fetch import arxiv_source, topic_query
from newsletter.errors import InvalidInput
from newsletter.intake.topic_files import RejectedTopic, read_topics
from newsletter.intake.topics import TopicEdit, TopicSpec
from newsletter.textfmt import readable_title

app = typer.Typer(cls=NewsletterGroup, help="Define topics: what each one matches on arXiv.")

Keywords = Annotated[
    list[str] | None,
    typer.Option("--keyword", "-k", help="A phrase searched in titles and abstracts (repeat)."),
]
Categories = Annotated[
    list[str] | None,
    typer.Option("--category", "-c", help="An arXiv category papers must be in (repeat)."),
]
Excludes = Annotated[
    list[str] | None,
    typer.Option("--exclude", "-x", help="A phrase that rules a paper out (repeat)."),
]
RawQuery = Annotated[
    str | None, typer.Option("--query", "-q", help="A raw arXiv query, for experts.")
]
Description = Annotated[
    str | None, typer.Option("--description", "-d", help="One line shown to subscribers.")
]


@app.command()
def add(
    name: str,
    keyword: Keywords = None,
    category: Categories = None,
    exclude: Excludes = None,
    query: RawQuery = None,
    description: Description = None,
) -> None:
    """Add a topic.

    Example: newsletter topics add NeRF -k "neural radiance field" -k NeRF -c cs.CV
    """
    spec = TopicSpec(
        name=name,
        description=description or "",
        keywords=tuple(keyword or ()),
        categories=tuple(category or ()),
        excludes=tuple(exclude or ()),
        raw_query=query,
    )
    with open_session() as session:
        topic = store.add_topic(session, spec)
        console.print(f"Added topic {topic.name}: {topic_query(topic)}")


@app.command("list")
def list_(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the topics with their subscribers and papers.

    Example: newsletter topics list --json
    """
    with open_session() as session:
        rows = store.topic_rows(session, store.list_topics(session))
    if json:
        print_json(rows)
        return
    table = Table("Topic", "Keywords", "Categories", "Subscribers", "Papers")
    for row in rows:
        keywords = "; ".join(row["keywords"]) or f"query: {row['query']}"
        table.add_row(
            row["name"],
            keywords,
            " ".join(row["categories"]),
            str(row["subscribers"]),
            str(row["papers"]),
        )
    console.print(table)


@app.command()
def show(name: str) -> None:
    """Show one topic and the arXiv query it runs.

    Example: newsletter topics show SLAM
    """
    with open_session() as session:
        topic = store.get_topic(session, name)
        console.print(f"{topic.name}  {topic.description}")
        console.print(f"keywords:   {'; '.join(topic.keywords) or '-'}")
        console.print(f"categories: {' '.join(topic.categories) or '-'}")
        console.print(f"exclude:    {'; '.join(topic.excludes) or '-'}")
        console.print(f"raw query:  {topic.raw_query or '-'}")
        console.print(f"arXiv query: {topic_query(topic)}")


@app.command()
def edit(
    name: str,
    add_keyword: Annotated[list[str] | None, typer.Option(help="Add a keyword phrase.")] = None,
    remove_keyword: Annotated[list[str] | None, typer.Option(help="Remove a keyword.")] = None,
    add_category: Annotated[list[str] | None, typer.Option(help="Add a category.")] = None,
    remove_category: Annotated[list[str] | None, typer.Option(help="Remove a category.")] = None,
    add_exclude: Annotated[list[str] | None, typer.Option(help="Add an excluded phrase.")] = None,
    remove_exclude: Annotated[list[str] | None, typer.Option(help="Remove one.")] = None,
    query: Annotated[str | None, typer.Option(help="Set the raw query ('' clears it).")] = None,
    description: Description = None,
) -> None:
    """Change what a topic matches.

    Example: newsletter topics edit SLAM --add-keyword "visual odometry" --remove-category cs.RO
    """
    with open_session() as session:
        topic = store.get_topic(session, name)
        spec = TopicEdit(
            tuple(add_keyword or ()),
            tuple(remove_keyword or ()),
            tuple(add_category or ()),
            tuple(remove_category or ()),
            tuple(add_exclude or ()),
            tuple(remove_exclude or ()),
            query,
            description,
        ).applied_to(topic)
        store.apply_topic_spec(topic, spec)
        console.print(f"Topic {topic.name} now runs: {topic_query(topic)}")


@app.command()
def remove(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Also when people subscribe to it.")] = False,
) -> None:
    """Remove a topic (its subscribers keep their other topics).

    Example: newsletter topics remove NeRF --yes
    """
    with open_session() as session:
        topic = store.get_topic(session, name)
        store.remove_topic(session, topic, even_if_followed=yes)
    console.print(f"Removed topic {name}.")


@app.command("import")
def import_(path: Path) -> None:
    """Add or update topics from a .toml or .yaml file.

    Every bad topic is reported with the file, its position and name; the good ones are kept.
    Example: newsletter topics import subscribers/topics.toml
    """
    # As `subscribers import`: each topic checked in full, then written in a savepoint of its
    # own, so one the database refuses is undone alone and the report matches the database.
    specs, rejected = read_topics(path)
    in_file = len(specs) + len(rejected)
    outcomes: list[tuple[str, str]] = []
    with open_session() as session:
        for where, spec in specs:
            try:
                outcome = store.in_savepoint(session, partial(store.upsert_topic, session, spec))
            except InvalidInput as error:
                rejected.append(RejectedTopic(where, str(error)))
                continue
            outcomes.append((spec.name, outcome))
    for name, outcome in outcomes:
        console.print(f"{outcome:>9}  {name}")
    for topic in rejected:
        err_console.print(f"{topic.where}: rejected: {topic.reason}")
    counts = {kind: sum(1 for _, o in outcomes if o == kind) for kind in ("added", "updated")}
    console.print(
        f"{counts['added']} added, {counts['updated']} updated, {in_file} in the file;"
        f" {len(rejected)} rejected."
    )
    if rejected:
        raise typer.Exit(code=1)


@app.command("test")
def test_(
    name: str,
    limit: Annotated[int, typer.Option(help="How many of the newest titles to show.")] = 10,
) -> None:
    """Run a topic's query against arXiv now and show what it matches; stores nothing.

    Example: newsletter topics test "Image Matching" --limit 5
    """
    with open_session() as session:
        query = topic_query(store.get_topic(session, name))
    total, papers = arxiv_source(get_settings()).probe(query, limit)
    console.print(f"{total} papers on arXiv match {name}: {query}")
    for paper in papers:
        title = readable_title(paper.title)
        console.print(f"  {paper.published:%Y-%m-%d}  {paper.arxiv_id:<12} {title}")
