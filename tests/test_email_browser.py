"""The digest in a real browser: headless Chromium at phone and pane widths, light and dark.

The email comes from the real pipeline and real arXiv responses (`tests/real_digest.py`). Each
run writes a full-page screenshot per width and colour scheme into `var/screenshots/` (not
committed) and prints the paths, so a person can look; the assertions check what can be
measured: no sideways scrolling, the phone layout stacks, dark mode is dark and readable.
"""

from __future__ import annotations

import email
from email import policy

import pytest

from tests.helpers import SCREENSHOTS
from tests.real_digest import real_digest_message

WIDTHS = (375, 600)


@pytest.fixture
def digest_html(cli, monkeypatch) -> str:
    message = email.message_from_bytes(real_digest_message(cli, monkeypatch), policy=policy.default)
    return message.get_body(("html",)).get_content()


def luminance(css_colour: str) -> float:
    """WCAG relative luminance (0 black … 1 white) of an `rgb(r, g, b)` colour."""
    inside = css_colour[css_colour.index("(") + 1 : css_colour.index(")")]
    red, green, blue = (float(part) / 255 for part in inside.split(",")[:3])

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def contrast(one: str, other: str) -> float:
    """WCAG contrast ratio: 4.5 is the minimum for body text, 7 the enhanced level."""
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


MEASURE = """() => {
  const style = (selector, property) => {
    const element = document.querySelector(selector);
    return element ? getComputedStyle(element)[property] : null;
  };
  const box = (selector) => {
    const element = document.querySelector(selector);
    return element ? element.getBoundingClientRect().toJSON() : null;
  };
  const widest = Math.max(...[...document.querySelectorAll('.paper-card, .paper-title, .toc-table')]
    .map((element) => element.getBoundingClientRect().right));
  return {
    scrollWidth: document.documentElement.scrollWidth,
    widest,
    body: style('body', 'backgroundColor'),
    panel: style('.topic-panel > table > tbody > tr > td', 'backgroundColor'),
    title: style('.paper-title a', 'color'),
    abstract: style('.paper-abstract', 'color'),
    link: style('.paper-links a', 'color'),
    date: box('.issue-date'),
    count: box('.issue-count'),
    preheader: style('.preheader', 'display'),
  };
}"""


@pytest.mark.parametrize("database_url", [None])
def test_digest_looks_right_at_phone_and_pane_widths_light_and_dark(browser, digest_html):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    written = []
    for width in WIDTHS:
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
            page.set_content(digest_html, wait_until="load")
            found = page.evaluate(MEASURE)
            path = SCREENSHOTS / f"digest-{width}-{scheme}.png"
            page.screenshot(path=str(path), full_page=True)
            page.close()
            written.append(path)
            where = f"{width} px, {scheme}"

            assert found["scrollWidth"] <= width, f"{where}: scrolls sideways"
            assert found["widest"] <= width, f"{where}: a card sticks out"
            assert found["preheader"] == "none", f"{where}: the preheader shows"
            if width < 480:  # one column: the paper count sits under the date
                assert found["count"]["top"] >= found["date"]["bottom"], where
            else:  # two columns: side by side
                assert found["count"]["left"] >= found["date"]["right"] - 1, where
            if scheme == "dark":
                assert luminance(found["body"]) < 0.05, f"{where}: {found['body']}"
                assert luminance(found["panel"]) < 0.05, f"{where}: {found['panel']}"
            else:
                assert luminance(found["body"]) > 0.8 and luminance(found["panel"]) > 0.9
            for colour in (found["title"], found["abstract"]):
                assert contrast(colour, found["panel"]) >= 7, f"{where}: {colour}"
            assert contrast(found["link"], found["panel"]) >= 4.5, f"{where}: {found['link']}"
    print("\nscreenshots:", *written, sep="\n  ")
    assert all(path.stat().st_size > 10_000 for path in written)
