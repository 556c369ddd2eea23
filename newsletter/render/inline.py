"""CSS inlining for email: premailer's result, at a fraction of its cost.

premailer runs one XPath query per CSS rule over the whole document and merges every matched
element's declarations through cssutils: ~15 ms for a 100 KB digest, once or more per segment
(the size ladder), a few hundred segments a day. The stylesheet a digest inlines uses only
selectors made of a tag or a class, alone or after one ancestor (`a`, `.paper-card`,
`.utility a`). Those `inline_styles` matches in one walk over the tree, and it merges each
distinct (own style, rules matched) once per process, with premailer's own functions, so the
result is premailer's. A stylesheet with anything else (an id, `>`, `:first-child`, an
attribute selector, three compounds) and a document with a floated image or without a head
go to premailer itself. tests/test_render.py checks that both give the same document.

`inline_css` is the whole step on an HTML string; `inline_styles` the same on a parsed tree.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict

import cssutils
from lxml import etree
from premailer import Premailer
from premailer.merge_style import csstext_to_pairs, merge_styles

INLINE_CSS_MARKER = "/* inline */"
"""Starts the `<style>` blocks whose rules are copied into `style` attributes."""

_PREMAILER_OPTIONS = {
    "allow_network": False,
    "keep_style_tags": True,
    "strip_important": False,
    "disable_validation": True,
    "cssutils_logging_level": logging.CRITICAL,
}
_COMPOUND = re.compile(r"[a-z][a-z0-9]*|\.-?[_a-zA-Z][_a-zA-Z0-9-]*")
_XML_SPACE = re.compile(r"[ \t\r\n]+")  # what XPath's normalize-space() splits classes on
_MEMO_LIMIT = 20_000

# cssutils reports every vendor property (mso-*, -webkit-*) of MJML's CSS as a problem.
cssutils.log.setLevel(logging.CRITICAL)


def inline_css(document: str) -> str:
    """Copy stylesheet rules into `style` attributes, as Gmail and Outlook need.

    Only `<style>` blocks that start with `INLINE_CSS_MARKER` are inlined: MRML's own reset
    (`table, td {...}`, `p {...}`) is written for a stylesheet, and copying it onto every table
    cell adds ~10% to a digest for nothing. The `<style>` blocks stay too, since clients that
    honour them need the `@media` rules (the one-column phone layout).
    """
    root = etree.fromstring(document, etree.HTMLParser())
    inline_styles(root)
    # Serialised here rather than by premailer, which drops MRML's lower-case doctype; without
    # a doctype clients render in quirks mode.
    return "<!doctype html>\n" + etree.tostring(root, method="html", encoding="unicode")


def inline_styles(root: etree._Element) -> None:
    """Copy the rules of the `<style>` blocks marked `INLINE_CSS_MARKER` into the `style`
    attributes of the elements they match, in place; the `<style>` blocks stay."""
    inlined = [style.text or "" for style in root.iter("style") if _inlined(style)]
    plan = _plan(tuple(inlined))
    if plan is None or root.find("head") is None or _floated_image(root):
        inline_with_premailer(root)
    else:
        plan.apply(root)


def inline_with_premailer(root: etree._Element) -> None:
    """`inline_styles` by premailer's own engine, in place (slower, same result)."""
    for style in root.iter("style"):
        # premailer skips `media=` blocks by itself, before it would remove the attribute.
        if "media" not in style.attrib and not _marked(style):
            style.set("data-premailer", "ignore")
    _Inliner(root, **_PREMAILER_OPTIONS).transform()


class _Inliner(Premailer):
    """premailer, reading each stylesheet once per process rather than once per document.

    premailer caches cssutils' parse of a stylesheet but turns its rules into (specificity,
    selector, declarations) afresh on every call, through cssutils' slow serialiser.
    """

    _rules: dict[tuple[str, int], tuple[list, list]] = {}

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list, list]:
        key = (css_body, ruleset_index)
        if key not in self._rules:
            if len(self._rules) > 64:  # a bound, should documents ever bring their own styles
                self._rules.clear()
            self._rules[key] = super()._parse_style_rules(css_body, ruleset_index)
        rules, leftover = self._rules[key]
        return list(rules), list(leftover)


_INLINER = _Inliner(**_PREMAILER_OPTIONS)  # for its rules and attribute functions


def _marked(style: etree._Element) -> bool:
    return (style.text or "").lstrip().startswith(INLINE_CSS_MARKER)


def _inlined(style: etree._Element) -> bool:
    """Whether premailer reads this block's rules, in `inline_with_premailer`."""
    media = style.get("media")
    if media and media not in ("all", "screen"):
        return False  # premailer skips it
    return "media" in style.attrib or _marked(style)


def _floated_image(root: etree._Element) -> bool:
    # premailer gives a floated <img> an `align` attribute; rare enough to leave to it.
    return any("float" in image.get("style", "") for image in root.iter("img"))


class _Plan:
    """The rules of one stylesheet, indexed by what their last compound matches."""

    def __init__(self, rules: list[tuple[str | None, str, list[tuple[str, str]]]]) -> None:
        # (ancestor compound or None, last compound, declarations), in premailer's order
        self.declarations = [declarations for _ancestor, _last, declarations in rules]
        self.by_tag: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
        self.by_class: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
        for index, (ancestor, last, _declarations) in enumerate(rules):
            if last.startswith("."):
                self.by_class[last[1:]].append((index, ancestor))
            else:
                self.by_tag[last].append((index, ancestor))
        # Only the compounds some rule needs above an element are counted on the way down.
        self.ancestor_tags = {a for a, _l, _d in rules if a and not a.startswith(".")}
        self.ancestor_classes = {a[1:] for a, _l, _d in rules if a and a.startswith(".")}
        self.memo: dict[tuple[str | None, tuple[int, ...]], list[tuple[str, str]]] = {}

    def apply(self, root: etree._Element) -> None:
        self._visit(root, defaultdict(int))

    def _visit(self, element: etree._Element, ancestors: defaultdict[str, int]) -> None:
        tag, value = element.tag, element.get("class")
        matched = [
            index for index, above in self.by_tag.get(tag, ()) if not above or ancestors[above]
        ]
        pushed = [tag] if tag in self.ancestor_tags else []
        if value:
            for name in _XML_SPACE.split(value.strip(" \t\r\n")):
                for index, above in self.by_class.get(name, ()):
                    if not above or ancestors[above]:
                        matched.append(index)
                if name in self.ancestor_classes:
                    pushed.append("." + name)
        if matched:
            self._style(element, matched)
        for token in pushed:
            ancestors[token] += 1
        for child in element:
            if child.tag.__class__ is str:  # not a comment
                self._visit(child, ancestors)
        for token in pushed:
            ancestors[token] -= 1

    def _style(self, element: etree._Element, matched: list[int]) -> None:
        key = (element.get("style"), tuple(sorted(set(matched))))
        changes = self.memo.get(key)
        if changes is None:
            changes = self._changes(*key)
            if len(self.memo) > _MEMO_LIMIT:
                self.memo.clear()
            self.memo[key] = changes
        for name, value in changes:
            element.set(name, value)

    def _changes(self, own_style: str | None, matched: tuple[int, ...]) -> list[tuple[str, str]]:
        """What premailer writes on such an element: its merged style, then the HTML
        attributes (align, bgcolor, width…) it derives from that style."""
        declarations = [self.declarations[index] for index in matched]
        style = merge_styles(
            own_style or "", declarations, [""] * len(declarations), remove_unset_properties=True
        )
        scratch = etree.Element("scratch")
        _INLINER._style_to_basic_html_attributes(scratch, style, force=True)
        return ([("style", style)] if style else []) + list(scratch.attrib.items())


_plans: dict[tuple[str, ...], _Plan | None] = {}


def _plan(stylesheets: tuple[str, ...]) -> _Plan | None:
    """The plan for these stylesheets, or None when they need premailer's full engine."""
    if stylesheets not in _plans:
        if len(_plans) > 64:
            _plans.clear()
        _plans[stylesheets] = _make_plan(stylesheets)
    return _plans[stylesheets]


def _make_plan(stylesheets: tuple[str, ...]) -> _Plan | None:
    rules = []
    for index, css in enumerate(stylesheets):
        these, _leftover = _INLINER._parse_style_rules(css, index)
        rules.extend(these)
    rules.sort(key=lambda rule: rule[0])  # premailer's order: specificity, then position
    compiled = []
    for _specificity, selector, declarations in rules:
        compounds = selector.split()
        if not 1 <= len(compounds) <= 2 or not all(_COMPOUND.fullmatch(c) for c in compounds):
            return None
        ancestor = compounds[0] if len(compounds) == 2 else None
        compiled.append((ancestor, compounds[-1], _pairs(declarations)))
    return _Plan(compiled)


def _pairs(declarations: str) -> list[tuple[str, str]]:
    # As premailer parses a rule's declarations before merging them (validation off).
    return csstext_to_pairs(declarations, validate=not _PREMAILER_OPTIONS["disable_validation"])
