"""MJML → the HTML an email carries: responsive HTML by mjml-python (Rust MRML), then its
styles inlined (`newsletter.render.inline`), as Gmail and Outlook need them."""

from __future__ import annotations

import mjml

from newsletter.errors import RenderError
from newsletter.render.inline import inline_css


def mjml_to_email(mjml_source: str) -> str:
    """MJML → HTML with its marked styles inlined: what an email's HTML part holds."""
    return inline_css(mjml_to_html(mjml_source))


def mjml_to_html(mjml_source: str) -> str:
    """MJML → responsive HTML (MRML), failures as `RenderError`."""
    try:
        # fonts={}: no Google Fonts import for the system font stack (no third-party fetches).
        return mjml.mjml2html(mjml_source, disable_comments=True, fonts={})
    except Exception as error:  # MRML raises its own, undocumented exception types
        raise RenderError(f"MJML could not be rendered: {error}") from error
