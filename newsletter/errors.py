"""The exception hierarchy: every error this package raises on purpose."""

from collections.abc import Iterator
from contextlib import contextmanager


class NewsletterError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(NewsletterError):
    """A setting is missing or does not make sense."""


class DatabaseError(NewsletterError):
    """The database cannot be reached or used (refused, missing, damaged, full)."""


class QueueError(NewsletterError):
    """The task queue (Redis, or the queue's SQLite file) cannot be reached or used."""


class StorageError(NewsletterError):
    """A file or folder we need cannot be read or written (permissions, full or read-only disk)."""


class FetchError(NewsletterError):
    """arXiv did not give us a usable answer."""


class TranslationError(NewsletterError):
    """A translator gave no usable translation (unreachable, refused, or a damaged answer)."""


class CodeLinkError(NewsletterError):
    """A code-link source (the Hugging Face papers API) gave no usable answer."""


class NothingToDo(NewsletterError):
    """A job was asked for with nothing to work on (no topic, nobody following one)."""


class InvalidInput(NewsletterError):
    """Something a user typed or imported cannot be used as it is."""

    field: str | None = None
    """The field it is about, where one is (the API names it beside the message)."""


@contextmanager
def about(field: str) -> Iterator[None]:
    """InvalidInput raised inside is about `field` (its words stay as they are)."""
    try:
        yield
    except InvalidInput as error:
        error.field = error.field or field
        raise


class UnknownTopic(InvalidInput):
    """A topic name that is not defined."""


class UnknownSubscriber(InvalidInput):
    """An address that is not on the list."""


class UnknownRecord(InvalidInput):
    """A record asked for by its id (a digest) that is not there."""


class AlreadyExists(InvalidInput):
    """A record of that name or address is there already (a topic, a subscriber, a token)."""


class InUse(InvalidInput):
    """A record others depend on, removed without saying so is meant (a followed topic)."""


class RenderError(NewsletterError):
    """A template could not be turned into an email."""


class DeliveryError(NewsletterError):
    """The mail server or the outbox refused a message."""


class InvalidToken(NewsletterError):
    """A signed token was tampered with, expired, or made for another purpose."""


class ExpiredToken(InvalidToken):
    """A well-signed token older than its purpose allows (a confirmation link)."""
