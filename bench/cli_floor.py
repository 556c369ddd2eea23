"""The least a `subscribers list` can be on this project's libraries: cli_bench's floor.

    NEWSLETTER_DATABASE_URL=sqlite:///small.db python bench/cli_floor.py list

Nothing of the project: a pydantic-settings class reads the database's URL from the
environment, two ORM classes map the subscribers and their topics (the tables `newsletter
init` made), a Typer command with `subscribers list`'s three options loads them with their
topics and prints a Rich table and the count, as the real command does. A command that reads
the database through SQLAlchemy's ORM, as the project's store does, with Typer,
pydantic-settings and Rich, starts no faster on the machine it runs on; cli_bench times it
beside the real command and checks that both count the same subscribers.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table
from sqlalchemy import Column, ForeignKey, create_engine, select
from sqlalchemy import Table as SqlTable
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSLETTER_")
    database_url: str = "sqlite:///var/newsletter.db"


class Base(DeclarativeBase):
    pass


subscriber_topics = SqlTable(
    "subscriber_topics",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id"), primary_key=True),
)


class Topic(Base):
    __tablename__ = "topics"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Subscriber(Base):
    __tablename__ = "subscribers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]
    name: Mapped[str]
    language: Mapped[str]
    status: Mapped[str]
    topics: Mapped[list[Topic]] = relationship(secondary=subscriber_topics, lazy="selectin")


class Status(enum.StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"


app = typer.Typer()


@app.callback()
def group() -> None:
    """A group, as `newsletter` is, so the command is found by name."""


@app.command("list")
def list_(
    topic: Annotated[str | None, typer.Option("--topic", "-t")] = None,
    status: Annotated[Status | None, typer.Option()] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    query = select(Subscriber).order_by(Subscriber.id)
    if topic:
        query = query.where(Subscriber.topics.any(Topic.name == topic))
    if status:
        query = query.where(Subscriber.status == status.value)
    with Session(create_engine(Settings().database_url)) as session:
        subscribers = session.scalars(query).all()
        table = Table("Email", "Name", "Topics", "Lang", "Status")
        for s in subscribers:
            topics = ", ".join(t.name for t in s.topics)
            table.add_row(s.email, s.name, topics, s.language, s.status)
    console = Console()
    console.print(table)
    console.print(f"{len(subscribers)} subscriber(s)")


if __name__ == "__main__":
    app()
