"""The one Jinja2 environment of the process: where templates are, how they are escaped, and
the filters they use (readable titles and authors, links in abstracts, wrapping for text).

`render_template` renders any template by its name under `templates/` (or `templates/web/`),
failures as `RenderError`.
"""

from __future__ import annotations

import html
import re
import textwrap
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

import newsletter
from newsletter.errors import RenderError
from newsletter.sources.codelinks import link_label, strip_trailing
from newsletter.textfmt import (
    authors_line,
    http_url,
    is_http_url,
    readable_paragraphs,
    readable_title,
    xml_safe,
)

TEXT_WIDTH = 76
"""Columns of the plain-text part (the `wrap` filter)."""

_ESCAPED_EXTENSIONS = ("html", "htm", "mjml", "xml", "html.j2", "htm.j2", "mjml.j2", "xml.j2")


def template_dir() -> Path:
    """The templates folder: inside the installed package, else the source checkout's."""
    packaged = Path(newsletter.__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(newsletter.__file__).parent.parent / "templates"


def static_dir() -> Path:
    """The web app's static files (served as `/static/...`)."""
    return template_dir() / "web" / "static"


def render_template(template_name: str, context: dict[str, object]) -> str:
    """A template by its name under `templates/` or `templates/web/`, filled with `context`.

    Raises RenderError for a missing template, a missing variable or bad syntax.
    """
    try:
        return environment().get_template(template_name).render(context)
    except jinja2.TemplateNotFound as error:
        raise RenderError(f"no template {error.name!r} under {template_dir()}") from error
    except jinja2.TemplateError as error:  # a missing variable (StrictUndefined), bad syntax
        raise RenderError(f"{template_name}: {error}") from error


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja2 environment of the process, with this module's filters."""
    env = jinja2.Environment(
        # Web pages answer to their bare name too (`message.html.j2`), as the web app uses them.
        loader=jinja2.FileSystemLoader([template_dir(), template_dir() / "web"]),
        # `digest.mjml.j2` is MJML and escaped; only `.txt` templates are not (unknown: escaped).
        autoescape=jinja2.select_autoescape(
            enabled_extensions=_ESCAPED_EXTENSIONS,
            disabled_extensions=("txt", "txt.j2"),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        finalize=_xml_safe_output,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # The paper filters are cached: the same papers appear in many segments, and these run
    # for each paper of each render.
    env.filters.update(
        readable_title=_cached(readable_title),
        paragraphs=_cached(lambda text: tuple(readable_paragraphs(text))),
        authors=_cached(authors_line),
        count_noun=count_noun,
        day=_day,
        http_url=_cached(http_url),
        linked=_cached(_linked),
        link_label=link_label,
        wrap=_wrap,
    )
    return env


def count_noun(count: int, singular: str, plural: str | None = None) -> str:
    """`1 new paper`, `14 new papers`."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _xml_safe_output(value: object) -> object:
    """Every value a template prints, without the characters XML forbids: one NUL or ESC in a
    paper's text made MJML refuse the whole email."""
    if not isinstance(value, str):
        return value
    cleaned = xml_safe(value)
    if len(cleaned) == len(value):
        return value
    return Markup(cleaned) if isinstance(value, Markup) else cleaned  # noqa: S704 (was Markup)


def _cached(function):
    """A pure text filter, remembered; unhashable arguments (a list) go straight through."""
    remembered = lru_cache(maxsize=16384)(function)

    def filter_(*args, **kwargs):
        try:
            return remembered(*args, **kwargs)
        except TypeError:  # unhashable
            return function(*args, **kwargs)

    return filter_


def _day(moment: datetime | date) -> str:
    """YYYY-MM-DD of a date or datetime."""
    return (moment.date() if isinstance(moment, datetime) else moment).isoformat()


_LINKABLE = re.compile(r"""https?://[^\s<>"'{}\\|^`]+""", re.IGNORECASE)


def _linked(text: str) -> Markup:
    """A paragraph, escaped, with each http(s) URL in it made a link (`\\href` and `\\url`
    come out of `readable_*` as plain URLs); no other scheme is ever linked."""
    parts, position = [], 0
    for match in _LINKABLE.finditer(text):
        url = strip_trailing(match.group())
        if not is_http_url(url):
            continue
        end = match.start() + len(url)
        parts += [html.escape(text[position : match.start()]), _anchor(url)]
        position = end
    parts.append(html.escape(text[position:]))
    return Markup("".join(parts))  # noqa: S704  every piece escaped just above


def _anchor(url: str) -> str:
    escaped = html.escape(url)
    return f'<a href="{escaped}">{escaped}</a>'


@lru_cache(maxsize=16384)  # the same abstracts recur in many segments
def _wrap(text: str, indent: str = "", first_indent: str | None = None) -> str:
    """A paragraph wrapped for the text part; long URLs stay whole so they stay clickable."""
    return textwrap.fill(
        text,
        width=TEXT_WIDTH,
        initial_indent=indent if first_indent is None else first_indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
