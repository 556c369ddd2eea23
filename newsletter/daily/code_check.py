"""Code links that appear after a paper was fetched: ask the Hugging Face papers API about the
recent papers without one, a few times, then give up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import CodeLinkError
from newsletter.models import utcnow
from newsletter.sources.codelinks import link_label
from newsletter.sources.huggingface import CodeLinkSource, HuggingFacePapers, RateLimited

CODE_RECHECK_INTERVAL = timedelta(hours=20)
"""Asked again after this long: a daily job whose start time drifts still asks once a day."""


CODE_CHECK_GIVE_UP_AFTER = 3
"""Consecutive failures after which Hugging Face is left alone until the next run."""


@dataclass
class CodeLinkReport:
    checked: int = 0
    found: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None
    """Why this run stopped asking early (rate limited, Hugging Face down), if it did."""

    def summary(self) -> str:
        if not (self.checked or self.errors):
            return ""
        text = f"Code links: {self.checked} papers asked on Hugging Face, {self.found} found"
        if self.errors:
            text += f", {len(self.errors)} not answered (asked again next run)"
        return text + "."


def check_code_links(
    settings: Settings, source: CodeLinkSource | None = None, now: datetime | None = None
) -> CodeLinkReport:
    """Ask Hugging Face for the code of papers that still have none, daily for a week.

    A paper is asked about on the run that first sees it (when its abstract and comment link
    no repository), then once a day for NEWSLETTER_CODE_RECHECK_DAYS, as authors often publish
    code days after the paper. A failure is reported and the paper asked again next run.
    """
    report = CodeLinkReport()
    if not settings.hf_code_links:
        return report
    source = source or HuggingFacePapers(settings.hf_api_url, timeout=settings.hf_timeout)
    now = now or utcnow()
    with session_scope(settings) as session:
        due = [
            (paper.id, paper.arxiv_id)
            for paper in store.papers_due_code_check(
                session,
                seen_since=now - timedelta(days=settings.code_recheck_days),
                checked_before=now - CODE_RECHECK_INTERVAL,
            )
            if not any(link_label(url) == "Code" for url in paper.code_urls)
        ]
    failures_in_a_row = 0
    for paper_id, arxiv_id in due:
        try:
            url = source.code_url(arxiv_id)
        except CodeLinkError as error:
            report.errors.append(f"{arxiv_id}: {error}")
            failures_in_a_row += 1
            if isinstance(error, RateLimited) or failures_in_a_row >= CODE_CHECK_GIVE_UP_AFTER:
                report.stopped = str(error)
                break
            continue
        failures_in_a_row = 0
        with session_scope(settings) as session:
            report.found += store.record_code_check(session, paper_id, url, now)
        report.checked += 1
    return report
