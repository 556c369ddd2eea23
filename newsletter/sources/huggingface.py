"""Ask the Hugging Face papers API which repository holds a paper's code.

`GET {base}/api/papers/<arXiv id>` describes a paper Hugging Face knows, and its `githubRepo`
field is the repository linked to it there (by the authors or the community). A 404 means the
paper is not on Hugging Face: an answer ("no code known"), not a failure. This is the second
layer of code links, after the links authors write in their abstract and comment
(`codelinks`); there is deliberately no third layer searching GitHub for the title, which finds
forks, reimplementations and namesakes.

Talks to the outside world and returns plain data; it knows nothing of the database.

    papers = HuggingFacePapers("https://huggingface.co", timeout=10)
    papers.code_url("2605.12495")   # "https://github.com/owner/repo", or None
"""

from __future__ import annotations

import re
from typing import Protocol

import requests

from newsletter.errors import CodeLinkError
from newsletter.sources.codelinks import find_code_links, link_label

DEFAULT_API_URL = "https://huggingface.co"
USER_AGENT = "arxiv-newsletter (code links for an arXiv digest)"

# New-style arXiv ids (2605.12495); Hugging Face has no pages for the old `hep-th/0101001` ones.
_NEW_STYLE_ID = re.compile(r"\d{4}\.\d{4,5}")


class CodeLinkSource(Protocol):
    """Where the daily job asks for a paper's code: Hugging Face, or a stand-in in tests."""

    def code_url(self, arxiv_id: str) -> str | None: ...


class RateLimited(CodeLinkError):
    """Hugging Face asked us to slow down (429): ask nothing more in this run."""


class HuggingFacePapers:
    """The Hugging Face papers API at `base_url`, one request per paper, each with a timeout."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)

    def code_url(self, arxiv_id: str) -> str | None:
        """The repository Hugging Face links to the paper, or None (no paper, or no repository).

        Raises `CodeLinkError` when Hugging Face gives no usable answer (5xx, a timeout, a body
        that is not the JSON it should be), `RateLimited` on 429.
        """
        paper = self.paper(arxiv_id)
        if paper is None:
            return None
        return repository_url(paper.get("githubRepo"))

    def paper(self, arxiv_id: str) -> dict | None:
        """The API's JSON about the paper; None when Hugging Face does not know it (404)."""
        if not _NEW_STYLE_ID.fullmatch(arxiv_id):
            return None
        url = f"{self.base_url}/api/papers/{arxiv_id}"
        try:
            response = self.session.get(
                url, timeout=self.timeout, headers={"Accept": "application/json"}
            )
        except requests.Timeout as error:
            raise CodeLinkError(f"Hugging Face did not answer within {self.timeout:g} s") from error
        except requests.RequestException as error:
            raise CodeLinkError(f"Hugging Face could not be reached: {error}") from error
        if response.status_code == 404:
            return None
        if response.status_code == 429:
            raise RateLimited(f"Hugging Face is rate limiting us (429) — GET {url}")
        if response.status_code != 200:
            raise CodeLinkError(f"Hugging Face answered HTTP {response.status_code} — GET {url}")
        try:
            data = response.json()
        except ValueError as error:
            raise CodeLinkError(
                f"Hugging Face answered something that is not JSON — GET {url}"
            ) from error
        if not isinstance(data, dict):
            raise CodeLinkError(f"Hugging Face answered JSON that is not a paper — GET {url}")
        return data


def repository_url(value: object) -> str | None:
    """`githubRepo` as a clean repository link (`https://github.com/owner/repo`), else None.

    The field is free-form in places (`github.com/a/b`, a deep link into the repository, an
    empty string): it goes through the same trimming as links in abstracts, and only a link
    to a code host counts.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    for url in find_code_links(value.strip()):
        if link_label(url) == "Code":
            return url
    return None
