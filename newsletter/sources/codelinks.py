"""Find links to a paper's code or project page in its abstract and comment.

Papers with Code is gone (July 2025); what is left is what authors write themselves, usually
"Code: https://github.com/owner/repo" in the comment or the last sentence of the abstract.
Authors write these links in many shapes (LaTeX `\\url{}`, a trailing full stop, a path deep
inside the repository, no scheme at all, a line break in the middle), so each link is cut
back to the thing a reader wants: the repository, the model or space, or the project page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

__all__ = ["find_code_links"]

# LaTeX wrappers authors leave in abstracts: \url{X}, \href{X}{text}, and escaped characters
# that are plain in a URL (\_ \% \# \&).
_LATEX_URL = re.compile(r"\\(?:url|href)\s*\{([^{}]*)\}")
_LATEX_ESCAPE = re.compile(r"\\([_%#&~])")

# A URL with a scheme, or a scheme-less link to a host that is only ever code ("Code:
# github.com/a/b"). The look-behind keeps e-mail addresses and longer host names out.
_URL = re.compile(
    r"""https?://[^\s<>"'{}\\|^`]+"""
    r"""|(?<![\w.@/-])(?:www\.)?(?:github\.com|gitlab\.com|huggingface\.co|hf\.co)/[^\s<>"'{}\\|^`]+"""
    r"""|(?<![\w.@/-])[\w-]+\.github\.io\b[^\s<>"'{}\\|^`]*""",
    re.IGNORECASE,
)

# What the text says just before a link on an unknown host that makes it a project link.
_CUE = re.compile(
    r"\b(?:code|codes|source|implementation|implementations|repository|repo|github"
    r"|project|website|web\s*site|homepage|home\s*page|webpage|web\s*page|demo|page)\b",
    re.IGNORECASE,
)
_CUE_WINDOW = 60

_IGNORED_HOSTS = ("arxiv.org", "doi.org", "dx.doi.org", "export.arxiv.org")

_GITHUB_NON_REPOS = {
    "about", "apps", "collections", "contact", "enterprise", "events", "explore", "features",
    "login", "marketplace", "orgs", "pricing", "settings", "site", "sponsors", "topics", "users",
}  # fmt: skip
_HUGGINGFACE_NON_REPOS = {
    "api", "blog", "docs", "join", "learn", "login", "models", "papers", "posts", "pricing",
    "settings", "tasks",
}  # fmt: skip
_HUGGINGFACE_KINDS = {"spaces", "datasets", "collections"}

# Kinds, in the order the links are returned: the repository first, the page last.
_GITHUB, _GITLAB, _HUGGINGFACE, _OTHER_CODE, _PROJECT = range(5)


def find_code_links(*texts: str | None) -> tuple[str, ...]:
    """Links to code or project pages in `texts` (an abstract, a comment), best first.

    GitHub repositories come first, then GitLab, Hugging Face, other code hosts, and project
    pages (`*.github.io`, or any link the text calls code, a project page, a website, ...).
    Repository links are trimmed to `https://<host>/<owner>/<repo>`; arXiv and DOI links are
    never returned; each link appears once.

    Example: find_code_links("Code: https://github.com/a/b/tree/main.") == ("https://github.com/a/b",)
    """
    found: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    for text in texts:
        if not text:
            continue
        for kind, url in _links_in(text):
            key = url.rstrip("/").lower()
            if key not in seen:
                seen.add(key)
                found.append((kind, len(found), url))
    return tuple(url for _kind, _order, url in sorted(found))


def _links_in(text: str) -> Iterable[tuple[int, str]]:
    text = _LATEX_URL.sub(r" \1 ", text)
    text = _LATEX_ESCAPE.sub(r"\1", text)
    position = 0
    while match := _URL.search(text, position):
        raw, end = _join_wrapped(text, match.group(), match.end())
        position = end
        classified = _classify(strip_trailing(raw))
        if classified is None:
            continue
        kind, url = classified
        if kind == _PROJECT and not _is_project_link(url, text[: match.start()]):
            continue
        yield kind, url


def _join_wrapped(text: str, url: str, end: int) -> tuple[str, int]:
    """Glue back a URL that a line break or a stray space cut in two.

    Only where the first half cannot be a whole link (`https://`, `github.com/owner/`, a
    trailing `-` or `_` before a line break), so that a sentence after a link is never eaten.
    """
    while True:
        gap = re.match(r"[ \t]*\n?[ \t]*", text[end:])
        rest = re.match(r"""[^\s<>"'{}\\|^`]+""", text[end + len(gap.group()) :]) if gap else None
        if not gap or not gap.group() or not rest:
            return url, end
        broken_line = "\n" in gap.group() and url[-1] in "-_"
        if not (_is_incomplete(url) or broken_line):
            return url, end
        url += rest.group()
        end += len(gap.group()) + len(rest.group())


def _is_incomplete(url: str) -> bool:
    if re.fullmatch(r"(?i)https?://", url):
        return True
    parts = _split(url)
    if parts is None:
        return False
    host = (parts.hostname or "").removeprefix("www.")
    segments = [segment for segment in parts.path.split("/") if segment]
    if host in ("github.com", "gitlab.com", "huggingface.co"):
        needed = 3 if segments[:1] and segments[0] in _HUGGINGFACE_KINDS else 2
        return len(segments) < needed and url.endswith("/")
    return False


def strip_trailing(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets that follow a link."""
    while url:
        last = url[-1]
        if last in ".,;:!?'\"*>":
            url = url[:-1]
        elif last in ")]}" and url.count(last) > url.count({")": "(", "]": "[", "}": "{"}[last]):
            url = url[:-1]
        else:
            break
    return url


def _classify(url: str) -> tuple[int, str] | None:
    parts = _split(url)
    if parts is None:
        return None
    host = (parts.hostname or "").lower().removeprefix("www.")
    segments = [segment for segment in parts.path.split("/") if segment]
    if not host or "." not in host or any(_on_host(host, ignored) for ignored in _IGNORED_HOSTS):
        return None
    if host == "github.com":
        if len(segments) < 2 or segments[0].lower() in _GITHUB_NON_REPOS:
            return None
        return _GITHUB, _repo_url(host, segments[:2])
    if host == "gitlab.com":
        # GitLab nests groups (group/subgroup/project); `/-/` starts the pages inside a project.
        project = segments[: segments.index("-")] if "-" in segments else segments
        if len(project) < 2:
            return None
        return _GITLAB, _repo_url(host, project)
    if host in ("huggingface.co", "hf.co"):
        if not segments or segments[0].lower() in _HUGGINGFACE_NON_REPOS:
            return None
        size = 3 if segments[0] in _HUGGINGFACE_KINDS else 2
        if len(segments) < size:
            return None
        return _HUGGINGFACE, _repo_url("huggingface.co", segments[:size])
    if host in ("codeberg.org", "bitbucket.org") and len(segments) >= 2:
        return _OTHER_CODE, _repo_url(host, segments[:2])
    if host == "anonymous.4open.science" and len(segments) >= 2 and segments[0] == "r":
        return _OTHER_CODE, _repo_url(host, segments[:2])
    if "://" not in url or _on_host(host, "github.io"):
        # Pages on github.io are served over https only; a link without a scheme needs one.
        url = "https://" + url.split("://", 1)[-1]
    return _PROJECT, url


def _is_project_link(url: str, before: str) -> bool:
    """`*.github.io` is always a project page; another site only when the text says so."""
    parts = _split(url)
    if parts is None:
        return False
    if _on_host(parts.hostname or "", "github.io"):
        return True
    # Look back to the start of the sentence, not into the previous one.
    window = before[-_CUE_WINDOW:]
    window = re.split(r"[.!?;]\s", window)[-1]
    return bool(_CUE.search(window))


def _split(url: str) -> SplitResult | None:
    """The URL's parts (https:// assumed when it has no scheme); None for what is not a URL
    anyone can open (`http://[::1`), which authors' text can hold."""
    try:
        return urlsplit(url if "://" in url else "https://" + url)
    except ValueError:
        return None


def _repo_url(host: str, segments: list[str]) -> str:
    path = "/".join(segments)
    return f"https://{host}/{path.removesuffix('.git')}"


def _on_host(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def link_label(url: str) -> str:
    """ "Code" for a repository (GitHub, GitLab, Hugging Face, …), "Project" for a project page."""
    found = _classify(url)
    return "Project" if found is None or found[0] == _PROJECT else "Code"
