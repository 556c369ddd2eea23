"""What a subscriber is, checked: addresses, languages, formats, the authors they follow, their
rhythm (see `rhythm`) and rows of a CSV import."""

from __future__ import annotations

import csv
import importlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from newsletter.authors import follow_key
from newsletter.errors import InvalidInput, about
from newsletter.intake.rhythm import (
    KEEP,
    ScheduleChange,
    normalise_cadence,
    normalise_day,
    normalise_hour,
    normalise_zone,
)
from newsletter.intake.topics import topic_key
from newsletter.models import MailFormat
from newsletter.userinput import CONTROL_CHARACTERS, one_line, without_control_characters

SCHEDULE_COLUMNS = ("cadence", "day", "hour", "timezone")
CSV_COLUMNS = ("email", "name", "topics", "language", "format", "follows", *SCHEDULE_COLUMNS)
MAX_NAME = 200
"""What the name's column holds (PostgreSQL refuses longer; SQLite would keep it)."""
MAX_LANGUAGE = 35
"""What the language's column holds: a valid BCP-47 tag can be longer, with extensions."""


@dataclass(frozen=True)
class SubscriberSpec:
    email: str
    topics: tuple[str, ...]
    name: str = ""
    language: str = "en"
    format: MailFormat | None = None
    """None: HTML for a new subscriber, and a known one keeps theirs (a CSV without the column
    must not undo what readers chose on their preferences page)."""
    follows: tuple[str, ...] | None = None
    """Authors they follow, as written; None: none for a new subscriber, and a known one keeps
    theirs (a CSV without the `follows` column)."""
    schedule: ScheduleChange = ScheduleChange()
    """Their cadence, hour, weekday and zone, as far as given: what is not given is the
    default for a new subscriber, and a known one keeps theirs."""

    def __post_init__(self) -> None:
        # Checked here, so the command line and the CSV import refuse the same things before
        # anything is written (the address and language are checked by their callers).
        object.__setattr__(self, "topics", topic_names(self.topics))
        object.__setattr__(self, "name", subscriber_name(self.name))
        if self.follows is not None:
            object.__setattr__(self, "follows", tuple(followed_names(self.follows).values()))
        if not self.topics:
            raise InvalidInput("a subscriber needs at least one topic")


def topic_names(names) -> tuple[str, ...]:
    """Topic names as given, blanks dropped, each topic once: `MLLM;mllm` is one topic, spelled
    as first written (names match as the store matches them, `topic_key`)."""
    return _topic_names(tuple(names))


@lru_cache(maxsize=4096)
def _topic_names(names: tuple[str, ...]) -> tuple[str, ...]:
    # Remembered: an import's rows name a few hundred sets of topics over and over (a set
    # refused raises, and is checked again each time).
    found: dict[str, str] = {}
    for name in names:
        text = one_line(name, f"the topic name {name!r}")
        if text:
            found.setdefault(topic_key(text), text)
    return tuple(found.values())


def followed_names(names) -> dict[str, str]:
    """Authors to follow, by `authors.follow_key`, each as first written: blanks dropped, one
    person once (`Kaiming He;He, Kaiming` is one follow); raises `InvalidInput` on the first
    name that cannot be followed (a surname alone, a control character, ...)."""
    found: dict[str, str] = {}
    for name in names:
        text = one_line(name, f"the author's name {name!r}")
        if text:
            found.setdefault(follow_key(text), text)
    return found


def subscriber_name(name: str) -> str:
    """How to greet someone, on one line (it goes into the To: header); raises when it holds a
    control character or is too long to store."""
    text = one_line(name, "the name")
    if len(text) > MAX_NAME:
        raise InvalidInput(f"the name is over {MAX_NAME} characters")
    return text


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str
    text: str


def normalise_email(address: str, *, check_deliverability: bool = False) -> str:
    """A valid address in its normal form (domain lower-cased, IDNA decoded); raises otherwise."""
    validate_email, not_valid = _email_validator()
    try:
        checked = validate_email(address.strip(), check_deliverability=check_deliverability)
    except not_valid as error:
        raise InvalidInput(f"{address!r} is not a valid email address: {error}") from error
    return checked.normalized


@lru_cache(maxsize=1)
def _email_validator():
    """email_validator's check and its error, imported on first use (as langcodes below:
    commands that check no address, most, and `--help`, start without them), once: an import
    statement run for each address of an import costs it some 2 µs a row.

    And it checks each domain once: its check of a domain (every character against the IDNA
    tables) is most of an address's cost, and a list of 100,000 addresses has a few thousand
    domains. A pure function of the domain (an invalid one raises, and is not remembered), so
    remembering it changes no answer."""
    checker = importlib.import_module("email_validator.validate_email")
    checker.validate_email_domain_name = lru_cache(maxsize=4096)(checker.validate_email_domain_name)
    from email_validator import EmailNotValidError, validate_email

    return validate_email, EmailNotValidError


def normalise_format(value: str) -> MailFormat:
    """`html` (HTML with a text alternative) or `text` (plain text only); raises otherwise."""
    try:
        return MailFormat(value.strip().lower())
    except ValueError as error:
        raise InvalidInput(f"{value!r} is not a mail format (use html or text)") from error


@lru_cache(maxsize=1024)
def normalise_language(code: str) -> str:
    """A BCP-47 language tag in its standard form (`zh-tw` → `zh-TW`); raises otherwise.

    Remembered: an import's rows are in a few languages, and langcodes takes some 20 µs to
    check and standardise one (a code refused raises, and is checked again each time)."""
    import langcodes

    text = code.strip().replace("_", "-")
    if not text or not langcodes.tag_is_valid(text):
        raise InvalidInput(
            f"{code!r} is not a language code (use BCP-47, like en, zh, zh-TW, pt-BR)"
        )
    tag = langcodes.standardize_tag(text)
    if len(tag) > MAX_LANGUAGE:
        raise InvalidInput(f"{code!r} is a language code too long to store (over {MAX_LANGUAGE})")
    return tag


LANGUAGE_CHOICES: dict[str, str] = {
    "en": "English",
    "ar": "العربية (Arabic)",
    "bg": "Български (Bulgarian)",
    "cs": "Čeština (Czech)",
    "da": "Dansk (Danish)",
    "de": "Deutsch (German)",
    "el": "Ελληνικά (Greek)",
    "es": "Español (Spanish)",
    "fa": "فارسی (Persian)",
    "fi": "Suomi (Finnish)",
    "fr": "Français (French)",
    "he": "עברית (Hebrew)",
    "hi": "हिन्दी (Hindi)",
    "hu": "Magyar (Hungarian)",
    "id": "Bahasa Indonesia (Indonesian)",
    "it": "Italiano (Italian)",
    "ja": "日本語 (Japanese)",
    "ko": "한국어 (Korean)",
    "nl": "Nederlands (Dutch)",
    "no": "Norsk (Norwegian)",
    "pl": "Polski (Polish)",
    "pt-BR": "Português do Brasil (Brazilian Portuguese)",
    "pt-PT": "Português europeu (European Portuguese)",
    "ro": "Română (Romanian)",
    "ru": "Русский (Russian)",
    "sv": "Svenska (Swedish)",
    "th": "ไทย (Thai)",
    "tr": "Türkçe (Turkish)",
    "uk": "Українська (Ukrainian)",
    "vi": "Tiếng Việt (Vietnamese)",
    "zh": "简体中文 (Simplified Chinese)",
    "zh-TW": "繁體中文 (Traditional Chinese)",
}
"""The languages the web pages offer (BCP-47 tags, in standard form), each named in itself."""


def offered_language(code: str, also: str | None = None) -> str:
    """A language the web pages offer (or `also`, the subscriber's current one); raises otherwise.

    The select on the page limits what a browser sends, not what a request can carry.
    """
    try:
        tag = normalise_language(code)
    except InvalidInput:
        tag = ""
    if tag not in LANGUAGE_CHOICES and (also is None or tag != also):
        raise InvalidInput("Choose a language from the list.")
    return tag


def email_key(address: str) -> str:
    """The form under which addresses are unique: case never makes two subscribers."""
    return address.casefold()


def read_subscriber_csv(
    text: str, *, default_language: str, check_deliverability: bool = False
) -> tuple[list[tuple[int, SubscriberSpec]], list[RejectedRow]]:
    """The rows of a CSV (see `subscriber_csv_rows`) read at once: the good ones, each with its
    line, and the rejected."""
    rows: list[tuple[int, SubscriberSpec]] = []
    rejected: list[RejectedRow] = []
    for row in subscriber_csv_rows(
        io.StringIO(text),
        default_language=default_language,
        check_deliverability=check_deliverability,
    ):
        if isinstance(row, RejectedRow):
            rejected.append(row)
        else:
            rows.append(row)
    return rows, rejected


def subscriber_csv_rows(
    lines: Iterable[str], *, default_language: str, check_deliverability: bool = False
) -> Iterator[tuple[int, SubscriberSpec] | RejectedRow]:
    """Rows of `email,name,topics,language,format,follows,cadence,day,hour,timezone` (topics
    and followed authors separated by `;`; all but email and topics optional), each with its
    line number, one at a time as they are read (a file of any length in little memory).

    A bad row is reported with its line and reason and never stops the good ones: every field
    is checked here (control characters too, in any column); whether the topics exist is
    checked against the database, before anything is written. Where the CSV itself cannot be
    read on (a quote left open swallows the lines after it), the rows before are kept and the
    rest is one rejection, at the line where it began. A header without the needed columns
    raises before any row is given.
    """
    reader = csv.DictReader(lines)
    try:
        reader.fieldnames  # noqa: B018 (reads the header row)
    except csv.Error as error:
        raise InvalidInput(f"line 1, the header row, is no CSV ({error})") from None
    for column in reader.fieldnames or []:
        without_control_characters(column, "the header row")
    missing = [column for column in ("email", "topics") if column not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput(
            f"the CSV needs a header row with the columns {','.join(CSV_COLUMNS)};"
            f" missing: {', '.join(missing)}"
        )
    seen: dict[str, int] = {}
    while True:
        starts_at = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            reason = (
                f"the CSV cannot be read from this line on ({error}: a quote left open?);"
                " nothing from here to the end is imported"
            )
            yield RejectedRow(starts_at, reason, "")
            return
        line = reader.line_num
        try:
            spec, refused = _spec_from_record(record, default_language, check_deliverability)
        except InvalidInput as error:
            yield RejectedRow(line, str(error), _raw(record))
            continue
        # A name that cannot be followed is reported on its line; the row is kept without it.
        for reason in refused:
            yield RejectedRow(line, reason, _raw(record))
        key = email_key(spec.email)
        if key in seen:
            yield RejectedRow(line, f"{spec.email} repeats line {seen[key]}", _raw(record))
            continue
        seen[key] = line
        yield line, spec


def _raw(record: dict) -> str:
    """The row as read, for the report of a row rejected (made only then)."""
    return ",".join(str(value) for value in record.values() if value is not None)


def _spec_from_record(
    record: dict, default_language: str, check: bool
) -> tuple[SubscriberSpec, list[str]]:
    if None in record:
        raise InvalidInput(f"too many columns (expected {','.join(CSV_COLUMNS)})")
    # The whole row searched at once; the column is looked for only when there is one.
    if CONTROL_CHARACTERS.search("".join(value for value in record.values() if value)):
        for column, value in record.items():
            if value is not None:
                without_control_characters(value, f"the {column} column")
    email = normalise_email(record.get("email") or "", check_deliverability=check)
    topics = topic_names((record.get("topics") or "").split(";"))
    if not topics:
        raise InvalidInput("no topics (separate several with ';')")
    language = normalise_language(record.get("language") or default_language)
    written = (record.get("format") or "").strip()
    mail_format = normalise_format(written) if written else None
    follows, refused = _follows_column(record.get("follows"))
    schedule = _schedule_columns(record, refused)
    spec = SubscriberSpec(
        email, topics, record.get("name") or "", language, mail_format, follows, schedule
    )
    return spec, refused


def _follows_column(value: str | None) -> tuple[tuple[str, ...] | None, list[str]]:
    """The authors of a `follows` cell (None where the CSV has no such column), and a reason
    for each name left out."""
    if value is None:
        return None, []
    kept: list[str] = []
    refused: list[str] = []
    for name in value.split(";"):
        try:
            followed_names([name])
        except InvalidInput as error:
            refused.append(f"follows: not followed, the rest of the row is kept: {error}")
            continue
        kept.append(name)
    return tuple(kept), refused


SCHEDULE_READERS = {
    "cadence": normalise_cadence,
    "day": normalise_day,
    "hour": normalise_hour,
    "timezone": normalise_zone,
}
"""How each rhythm column is read; an empty cell (or no column) is `KEEP`."""


def _schedule_columns(record: dict, refused: list[str]) -> ScheduleChange:
    """The rhythm a row asks for; a bad value is left out (their own, or the default, stays)
    with a reason added to `refused`, and the rest of the row is kept, as with `follows`."""
    if not any(record.get(column) for column in SCHEDULE_READERS):
        return ScheduleChange()  # most rows: no rhythm asked
    given: dict[str, object] = {}
    for column, read in SCHEDULE_READERS.items():
        text = (record.get(column) or "").strip()
        if not text:
            continue
        try:
            given[column] = read(text)
        except InvalidInput as error:
            refused.append(f"{column}: not changed, the rest of the row is kept: {error}")
    if given.get("cadence") == "daily" and "day" in given:
        refused.append(
            "day: not changed, the rest of the row is kept: a weekday goes with"
            " a weekly cadence only"
        )
        del given["day"]
    return ScheduleChange(
        cadence=given.get("cadence", KEEP),
        hour=given.get("hour", KEEP),
        day=given.get("day", KEEP),
        zone=given.get("timezone", KEEP),
    )


def new_subscriber(
    email: str,
    topics,
    *,
    name: str = "",
    language: str | None = None,
    mail_format: str | None = None,
    follows=(),
    schedule: ScheduleChange = ScheduleChange(),  # noqa: B008 (frozen: one default is safe)
    default_language: str,
    check_deliverability: bool = False,
) -> SubscriberSpec:
    """A subscriber the operator adds (the command line, the API), every field checked; an
    error names the field it is about (`InvalidInput.field`)."""
    with about("email"):
        address = normalise_email(email, check_deliverability=check_deliverability)
    with about("language"):
        language = normalise_language(language or default_language)
    with about("format"):
        chosen_format = normalise_format(mail_format or MailFormat.html.value)
    with about("topics"):
        topic_list = topic_names(topics)
    with about("name"):
        name = subscriber_name(name)
    with about("follows"):
        follow_list = tuple(followed_names(follows).values())
    return SubscriberSpec(address, topic_list, name, language, chosen_format, follow_list, schedule)


@dataclass(frozen=True)
class SubscriberEdit:
    """What an operator changes of a subscriber, checked; None and () keep what they have."""

    add_topics: tuple[str, ...] = ()
    remove_topics: tuple[str, ...] = ()
    language: str | None = None
    format: MailFormat | None = None
    name: str | None = None
    follow: tuple[str, ...] = ()
    unfollow: tuple[str, ...] = ()
    schedule: ScheduleChange = ScheduleChange()
    resubscribe: bool = False

    @classmethod
    def checked(
        cls,
        *,
        add_topics=(),
        remove_topics=(),
        language: str | None = None,
        mail_format: str | None = None,
        name: str | None = None,
        follow=(),
        unfollow=(),
        schedule: ScheduleChange = ScheduleChange(),  # noqa: B008 (frozen)
        resubscribe: bool = False,
    ) -> SubscriberEdit:
        """Everything typed, checked before the database is touched: a bad value changes
        nothing. An error names its field (`InvalidInput.field`)."""
        with about("add_topics"):
            added = topic_names(add_topics)
        with about("remove_topics"):
            removed = topic_names(remove_topics)
        with about("language"):
            language = normalise_language(language) if language is not None else None
        with about("format"):
            chosen_format = normalise_format(mail_format) if mail_format is not None else None
        with about("name"):
            name = subscriber_name(name) if name is not None else None
        with about("follow"):
            to_follow = tuple(followed_names(follow).values())
        with about("unfollow"):
            to_unfollow = tuple(followed_names(unfollow).values())
        return cls(
            added,
            removed,
            language,
            chosen_format,
            name,
            to_follow,
            to_unfollow,
            schedule,
            resubscribe,
        )


@dataclass
class ImportReport:
    """What an import did: how many rows had each outcome ("added", "updated", ...) and the
    rows rejected, each with its line and why."""

    outcomes: dict[str, int] = field(default_factory=dict)
    rejected: list[RejectedRow] = field(default_factory=list)

    def summary(self) -> str:
        """ "2 added, 1 updated; 1 rejected." """
        done = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.outcomes.items()))
        return f"{done or 'nothing imported'}; {len(self.rejected)} rejected."
