"""CSS inlining for email: the rules of the marked `<style>` blocks copied into the `style`
attributes of the elements they match, as Gmail and Outlook need, by css-inline (Rust, through
its public `CSSInliner`).

Only `<style>` blocks that start with `INLINE_CSS_MARKER` are inlined: MRML's own reset
(`table, td {...}`, `p {...}`) is written for a stylesheet, and copying it onto every table
cell adds ~10% to a digest for nothing. Every `<style>` block stays, since clients that honour
them need the `@media` rules (the one-column phone layout). An element's own `style` wins over
the rules, which are applied by specificity, then order, as a browser would.

css-inline writes on every element the declarations premailer would (tests/test_render.py
keeps premailer's output to compare with), without spaces (`color:#6b7280;text-decoration:
underline`). It derives no HTML attributes (`align`, `valign`, `bgcolor`) from the styles: a
template writes the ones Outlook needs itself (the table of contents' cells do).
"""

from __future__ import annotations

import re

import css_inline

INLINE_CSS_MARKER = "/* inline */"
"""Starts the `<style>` blocks whose rules are copied into `style` attributes."""

_MARKED_STYLE = re.compile(
    r"<style\b[^>]*>\s*" + re.escape(INLINE_CSS_MARKER) + r"(.*?)</style>", re.DOTALL
)
_DOCTYPE = "<!doctype html>"


def inline_css(document: str) -> str:
    """The HTML `document` with its marked rules inlined, starting `<!doctype html>`: without
    a doctype clients render in quirks mode."""
    inliner = css_inline.CSSInliner(
        inline_style_tags=False,  # the marked rules come as `extra_css`, no others
        keep_style_tags=True,
        keep_link_tags=True,
        load_remote_stylesheets=False,
        extra_css="\n".join(_MARKED_STYLE.findall(document)),
        minify_css=True,  # `a:b;c:d`: the bytes count against Gmail's limit
    )
    inlined = inliner.inline(document)
    if inlined[: len(_DOCTYPE)].lower() == _DOCTYPE:
        inlined = inlined[len(_DOCTYPE) :].lstrip()
    return f"{_DOCTYPE}\n{inlined}"
