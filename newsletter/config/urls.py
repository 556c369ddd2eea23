"""URL settings: what each may hold, and how to print one without its password.

A URL is checked as its setting is read (`check_web_url`, `check_smtp_url`, `check_redis_url`,
`checked_database_url`), with messages that never repeat it, since it may hold a password;
`mask_url_password` is how any URL is printed, in `newsletter config`, error messages and logs.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import idna

MASK = "********"
"""What a password, or a secret that is no URL, is printed as."""
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_WITHOUT_SCHEME = re.compile(r"[^/@\s]*@[^/@\s]|[A-Za-z0-9.-]+:\d+(?:/|$)")
"""`user:pass@host:587` or `127.0.0.1:6379/0`: a URL with its scheme left out. (A bare word
might be a host, or the password itself pasted by mistake: that one is not shown.)"""
SECRET_PARAMETERS = re.compile(
    r"(?P<head>[?&;](?:token|key|api_key|apikey|access_token|auth_key|password)=)[^&;#\s\"']+",
    re.IGNORECASE,
)
"""The query parameters that carry a secret: `?token=` of the admin pages, `?api_key=` of a
translator, `?password=` of a Redis socket."""
PERCENT_ENCODE = (
    "has a password the URL cannot hold as it is: percent-encode / # ? @ : in it"
    " (%2F %23 %3F %40 %3A)"
)


# ------------------------------------------------------------------------------ checking


def check_web_url(url: str, *, links: bool = False) -> None:
    """ValueError unless `url` is an absolute http(s) address with a host; `links`: also no
    `?` or `#` (even an empty one) that the paths appended to it would end up behind."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port that is no number)
    except ValueError as error:
        raise ValueError("is not a valid address (check the host and the port)") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        if links:
            raise ValueError(
                "must start with https:// (or http://) and name a host, like"
                " https://digest.example.org: every link in every email starts with it"
            )
        raise ValueError(
            "must start with http:// or https:// and name a host, like https://example.org"
        )
    if links and ("?" in url or "#" in url):
        raise ValueError("must not have a ?query or #fragment: link paths are appended to it")


def lower_case_scheme(url: str) -> str:
    """`HTTPS://Example.org/x` → `https://Example.org/x`: schemes are case-insensitive, and
    what compares them (HSTS, secure cookies, the production check) looks for `https://`."""
    scheme = _SCHEME.match(url)
    return url if scheme is None else scheme.group().lower() + url[scheme.end() :]


def check_smtp_url(url: str) -> None:
    """ValueError unless `url` is an SMTP URL we can use; the message never repeats the URL
    (it holds the password)."""
    example = "like smtp://user:pass@host:587 or smtps://user:pass@host:465"
    if not url.lower().startswith(("smtp://", "smtps://")):
        raise ValueError(f"must start with smtp:// or smtps:// and name a host, {example}")
    if password_breaks_url(url):
        raise ValueError(f"{PERCENT_ENCODE}, {example}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port that is no number)
    except ValueError:
        raise ValueError(f"has a port that is no number ({example})") from None
    if not parts.hostname:
        raise ValueError(f"must start with smtp:// or smtps:// and name a host, {example}")
    query = parse_qs(parts.query)
    starttls = query.pop("starttls", ["auto"])[-1]
    if query or starttls not in ("auto", "require", "never"):
        raise ValueError("takes only ?starttls=auto, ?starttls=require or ?starttls=never")


def check_redis_url(url: str) -> None:
    """ValueError unless `url` is a Redis URL: redis://, rediss:// or unix://, and a database
    number, if any, that is a number. The message never repeats redis-py's (it may quote a
    piece of the password: "Port could not be cast to integer value as 'sec'")."""
    from redis.connection import parse_url

    example = "like redis://127.0.0.1:6379/0"
    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"must start with redis://, rediss:// or unix://, {example}")
    if password_breaks_url(url):
        raise ValueError(f"{PERCENT_ENCODE} ({example})")
    try:
        urlsplit(url).port  # noqa: B018 (raises for a port that is no number)
    except ValueError:
        raise ValueError(f"has a port that is no number ({example})") from None
    try:
        options = parse_url(url)
    except ValueError as error:
        # redis-py's only other refusal: "Invalid value for 'name' in connection URL."
        option = re.search(r"for '(\w+)'", str(error))
        name = f" ?{option.group(1)}=" if option else " ?option"
        raise ValueError(f"has a{name} value redis-py cannot read ({example})") from None
    path = urlsplit(url).path.strip("/")
    if url.startswith(("redis://", "rediss://")) and path and not path.isdigit():
        raise ValueError(f"has {path!r} where the database number goes ({example})")
    if options.get("db", 0) < 0:
        raise ValueError(f"has a negative database number ({example})")


SUPPORTED_DATABASES = "SQLite (sqlite:///path/to/file.db) and PostgreSQL (postgresql://…)"


def checked_database_url(url: str) -> str:
    """A database URL we can use, common forms made exact: `postgres://` and `postgresql://`
    (what hosting providers hand out) become `postgresql+psycopg://`, the driver installed
    with `pip install '.[postgres]'`. ValueError, saying what to do, for anything else."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme, found, rest = url.partition("://")
    if not found:
        raise ValueError(f"is not a database URL: use {SUPPORTED_DATABASES}")
    backend, _, driver = scheme.lower().partition("+")
    if backend in ("postgres", "postgresql"):
        url = f"postgresql+{driver or 'psycopg'}://{rest}"
    elif backend != "sqlite":
        name = {"mysql": "MySQL", "mariadb": "MariaDB"}.get(backend, backend)
        raise ValueError(f"{name} is not supported: only {SUPPORTED_DATABASES} are (and tested)")
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except ArgumentError:
        raise ValueError(f"is not a database URL: use {SUPPORTED_DATABASES}") from None
    except NoSuchModuleError:
        raise ValueError(
            f"SQLAlchemy has no driver {driver!r}: leave it out (postgresql://…) to use psycopg"
        ) from None
    except ValueError:  # int() of the port; its message may quote a piece of the password
        raise ValueError(f"has a port that is no number, or {PERCENT_ENCODE}") from None
    if "@" in (parsed.host or ""):
        # SQLAlchemy ends the password at its first "@": the rest would be taken for the host.
        raise ValueError(PERCENT_ENCODE)
    if dialect.is_async:
        raise ValueError(f"{driver} is an asyncio driver, which this service cannot use")
    try:
        dialect.import_dbapi()
    except ImportError as error:
        extra = "pip install '.[postgres]'"
        if driver and driver != "psycopg":
            raise ValueError(
                f"the driver {driver} is not installed ({error}): leave `+{driver}` out to use"
                f" psycopg, which `{extra}` installs"
            ) from None
        raise ValueError(f"the PostgreSQL driver is not installed: {extra}") from None
    return url


def ascii_domain(domain: str) -> str:
    """A domain as DNS and mail carry it: `bücher.example` → `xn--bcher-kva.example` (IDNA);
    ValueError when it has no such form."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise ValueError(str(error)) from None


def redis_where(url: str | None) -> str:
    """Where the Redis of `url` listens, for messages: `host:port`, or the path of a unix
    socket; `url` unset: Redis's own default, localhost:6379."""
    from redis.connection import parse_url

    options = parse_url(url or "redis://localhost:6379/0")
    return options.get("path") or f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"


# ------------------------------------------------------------------------------- masking


def has_host(text: str) -> bool:
    """Whether `text` is a URL with a host, its scheme written or left out, so that its password
    can be told from the rest (a bare word might be a host, or the password itself)."""
    return bool(_SCHEME.match(text) or _WITHOUT_SCHEME.match(text))


def mask_url_password(url: str) -> str:
    """`url` fit to print: `smtp://user:pass@host` → `smtp://user:********@host`, also written
    without its scheme (`user:pass@host:587`), and the values of `?password=`, `?key=`,
    `?token=`, `?api_key=` … masked. Nothing else changes: the rest tells what is wrong.

    The password runs from the colon after the user to the "@" before the host, found so that
    it holds whatever any parser we hand the URL to reads as the password (see `_userinfo_end`).
    """
    span = _password_span(url)
    if span is not None:
        url = f"{url[: span[0]]}{MASK}{url[span[1] :]}"
    return SECRET_PARAMETERS.sub(rf"\g<head>{MASK}", url)


def url_password(url: str) -> str | None:
    """The password in `url` as `mask_url_password` finds it (percent-encoded as written)."""
    span = _password_span(url)
    return url[span[0] : span[1]] if span is not None and span[0] < span[1] else None


def password_breaks_url(url: str) -> bool:
    """Whether the password of `url` holds a / ? or # that is not percent-encoded: urlsplit
    (and so redis-py, and our SMTP settings) then end the host part early, at that character."""
    rest = url[_after_scheme(url) :]
    return _stray_at(rest[len(_authority(rest)) :])


def _password_span(url: str) -> tuple[int, int] | None:
    start = _after_scheme(url)
    rest = url[start:]
    end = _userinfo_end(rest)
    colon = rest.find(":", 0, end) if end >= 0 else -1
    if colon < 0 or "/" in rest[:colon]:  # no userinfo, or no password in it
        return None
    return start + colon + 1, start + end


def _after_scheme(url: str) -> int:
    scheme = _SCHEME.match(url)
    return scheme.end() if scheme else 0  # `user:pass@host:587`: all of it is the authority


def _authority(rest: str) -> str:
    """The authority of `rest` (a URL after its `scheme://`) as urlsplit sees it."""
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _userinfo_end(rest: str) -> int:
    """Where the userinfo of `rest` (a URL after its `scheme://`) ends: the index of its "@",
    or -1. Normally the last "@" of the authority. An unencoded / ? or # in the password ends
    the authority early for urlsplit (SQLAlchemy reads on to the "@"), and then an "@" turns
    up where a URL has none: the userinfo runs to the very last "@" (hiding too much is safe;
    too little is not)."""
    authority = _authority(rest)
    if _stray_at(rest[len(authority) :]):
        return rest.rfind("@")
    return authority.rfind("@")


def _stray_at(after_authority: str) -> bool:
    """Whether an "@" is in the path, the fragment, or a query parameter's name: never in a
    URL we take, always the end of a password that an unencoded / ? # cut short."""
    path_and_query, _, fragment = after_authority.partition("#")
    path, _, query = path_and_query.partition("?")
    names = (pair.partition("=")[0] for pair in re.split("[&;]", query))
    return "@" in path or "@" in fragment or any("@" in name for name in names)
