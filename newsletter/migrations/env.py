"""Alembic environment: the engine comes from the caller (newsletter.db), never from an ini file."""

from alembic import context

from newsletter.models import Base

config = context.config


def run_migrations() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch rebuild drops the old table: with foreign keys on, that drop would cascade
            # into every row pointing at it (a subscriber's topics, a topic's papers). The
            # pragma only takes effect outside a transaction, so it is set before one begins.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
                render_as_batch=sqlite,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()  # nothing is left open, so that the pragma takes effect
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")


run_migrations()
