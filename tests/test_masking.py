"""Masking and checks: math, markup, links and names survive translation, damage is caught.

Every real abstract under ../shared/fixtures/arxiv/ that holds math or a URL round-trips
unchanged through an identity translation (and through one that mangles the placeholders the
way translators do); every one of them (187), with its own arXiv id cited in it, keeps the id
whole through a translator that writes `arXiv：` and `2312. 17296`; the failures seen on the seed
page (`\\方法｛｝`, `https：//`, "Leververs Leververs", a system name translated word by word)
are each caught.
"""

from __future__ import annotations

import re

import pytest
from arxiv import _feed

from newsletter.sources.papers import paper_from_result
from newsletter.translate.masking import (
    MaskMismatch,
    mask,
    problems,
    restore,
    system_names,
)
from newsletter.translate.pipeline import source_text
from tests.arxiv_server import SHARED_FIXTURES
from tests.helpers import CITED, CITING, as_translators_write, full_width_placeholders

MATH_OR_URL = re.compile(r"\$|\\\(|\\\[|https?://")
FIXTURE_FILES = sorted(
    path.relative_to(SHARED_FIXTURES).as_posix()
    for folder in ("current", "legacy")
    for path in (SHARED_FIXTURES / folder).glob("*.xml")
)


def real_papers(relpath: str):
    path = SHARED_FIXTURES / relpath
    if not path.is_file():
        pytest.skip(f"../shared/fixtures/arxiv not found: {path} is missing")
    return [paper_from_result(result) for result in _feed.parse(path.read_bytes()).results]


def with_math_or_url(relpath: str):
    return [p for p in real_papers(relpath) if MATH_OR_URL.search(p.abstract)]


# Files with at least one abstract holding math or a URL (the others have nothing to mask).
MASKABLE_FILES = [relpath for relpath in FIXTURE_FILES if with_math_or_url(relpath)]


# ---------------------------------------------------------------- real abstracts


def test_the_shared_fixtures_are_there_to_test():
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"../shared/fixtures/arxiv not found at {SHARED_FIXTURES}")
    assert len(FIXTURE_FILES) >= 10


@pytest.mark.parametrize("relpath", MASKABLE_FILES or ["(../shared/fixtures/arxiv absent)"])
def test_every_real_abstract_with_math_or_a_url_round_trips(relpath):
    for paper in with_math_or_url(relpath):
        names = system_names(paper.title)
        source = source_text(paper.abstract)
        masked = mask(source, names)
        # Nothing protected is left in sight of the translator.
        assert "$" not in masked.text and "http" not in masked.text, (paper.arxiv_id, masked.text)
        assert not re.search(r"\\[A-Za-z]", masked.text), (paper.arxiv_id, masked.text)
        for name in names:
            assert name not in masked.text, (paper.arxiv_id, name)
        # Identity translation: back exactly, and the checks find nothing.
        assert restore(masked.text, masked) == source, paper.arxiv_id
        assert problems(source, source, "de", names) == [], paper.arxiv_id
        # Placeholders mangled as translators do still come back to the same text.
        assert restore(full_width_placeholders(masked.text), masked) == source, paper.arxiv_id


def all_real_papers():
    """Each real paper once (some files share papers), by arXiv id."""
    return {paper.arxiv_id: paper for relpath in FIXTURE_FILES for paper in real_papers(relpath)}


def test_every_real_abstract_round_trips_with_its_own_id_cited_in_it():
    papers = all_real_papers()
    if not papers:
        pytest.skip(f"../shared/fixtures/arxiv not found at {SHARED_FIXTURES}")
    assert len(papers) >= 187
    for arxiv_id, paper in papers.items():
        names = system_names(paper.title)
        abstract = source_text(paper.abstract)
        # No number of a real abstract is taken for an identifier (none of them cites one).
        assert not [s for s in mask(abstract, names).spans if re.fullmatch(r"[\d.]+", s)]
        cited = (f"arXiv:{arxiv_id}v{paper.version}", f"arXiv: {arxiv_id}", arxiv_id)
        source = f"{abstract}\n\nSee {cited[0]}, {cited[1]} and ({cited[2]})."
        masked = mask(source, names)
        assert masked.spans[-3:] == cited, arxiv_id
        assert restore(masked.text, masked) == source, arxiv_id
        assert problems(source, source, "de", names) == [], arxiv_id
        translated = restore(as_translators_write(masked.text), masked)
        assert translated.endswith(f"{cited[0]}, {cited[1]} and ({cited[2]})."), arxiv_id
        for span in masked.spans:
            assert translated.count(span) >= masked.spans.count(span), (arxiv_id, span)


def test_real_abstracts_with_math_or_urls_are_many():
    if not FIXTURE_FILES:
        pytest.skip(f"../shared/fixtures/arxiv not found at {SHARED_FIXTURES}")
    found = {paper.arxiv_id for relpath in FIXTURE_FILES for paper in with_math_or_url(relpath)}
    assert len(found) >= 30


# ---------------------------------------------------------------- what is masked

CASES = {
    "inline math": ("the loss $\\mathcal{L}_{kl}$ is small", ["$\\mathcal{L}_{kl}$"]),
    "display math": ("we get $$x^2 + y^2$$ here", ["$$x^2 + y^2$$"]),
    "paren math": ("when \\(n \\to \\infty\\) holds", ["\\(n \\to \\infty\\)"]),
    "bracket math": ("the bound \\[O(n)\\] holds", ["\\[O(n)\\]"]),
    "macro": ("We propose \\method{}, a new model", ["\\method{}"]),
    "href": ("see \\href{https://x.org/a}{our code} now", ["\\href{https://x.org/a}{our code}"]),
    "cite": ("as shown \\cite{smith2020,lee21} before", ["\\cite{smith2020,lee21}"]),
    "url": ("Code: https://github.com/a/b-c.", ["https://github.com/a/b-c"]),
    "url in parentheses": ("(see https://x.org/p_(q))", ["https://x.org/p_(q)"]),
    "url before CJK punctuation": ("代码：https://x.org/a。见", ["https://x.org/a"]),
    "bare url": ("at github.com/org/repo today", ["github.com/org/repo"]),
    "email": ("write to ada.l@example.org.", ["ada.l@example.org"]),
    "snake_case": ("call load_state_dict() first", ["load_state_dict()"]),
    "dotted name": ("the torch.nn.Module class", ["torch.nn.Module"]),
    "CamelCase with digits": ("beats GPT-4o and Qwen2.5-VL", ["GPT-4o", "Qwen2.5-VL"]),
    "ALLCAPS": ("our MLLM is good", ["MLLM"]),
    "only the coined part": ("an LLM-based agent", ["LLM"]),
    "accented word": ('the Schr\\"odinger equation', ['Schr\\"odinger']),
    "backticks": ("set `max_len=512` to", ["`max_len=512`"]),
}


REFERENCES = {
    "arXiv id": ("as in arXiv:2312.17296.", ["arXiv:2312.17296"]),
    "arXiv id with version": ("(arXiv:2312.17296v2)", ["arXiv:2312.17296v2"]),
    "arXiv id, 2007 to 2014": ("see arXiv:0706.3031v3", ["arXiv:0706.3031v3"]),
    "old arXiv id": ("by arXiv:hep-th/9901001,", ["arXiv:hep-th/9901001"]),
    "old arXiv id with subject": ("arXiv: math.GT/0309136v1.", ["arXiv: math.GT/0309136v1"]),
    "full-width colon as written": ("见arXiv：2312.17296。", ["arXiv：2312.17296"]),
    "bare arXiv id": ("extends 2312.17296 and 1501.00001v3", ["2312.17296", "1501.00001v3"]),
    "bare old arXiv id": (
        "cf. hep-th/9901001 and cond-mat.str-el/0101001",
        ["hep-th/9901001", "cond-mat.str-el/0101001"],
    ),
    "DOI": ("doi:10.1145/3292500.3330701.", ["doi:10.1145/3292500.3330701"]),
    "DOI with a space": (
        "DOI: 10.1103/PhysRevLett.116.061102;",
        ["DOI: 10.1103/PhysRevLett.116.061102"],
    ),
    "bare DOI in parentheses": ("(10.1016/j.cell.2020.01.001)", ["10.1016/j.cell.2020.01.001"]),
    "DOI after CJK": ("见DOI：10.1145/3292500.3330701。", ["DOI：10.1145/3292500.3330701"]),
    "DOI link is a URL": (
        "https://doi.org/10.1145/3292500.3330701 and arxiv.org/abs/2312.17296.",
        ["https://doi.org/10.1145/3292500.3330701", "arxiv.org/abs/2312.17296"],
    ),
    "ISBN": ("ISBN 978-3-16-148410-0; ISBN-10: 0-306-40615-2",
             ["ISBN 978-3-16-148410-0", "ISBN-10: 0-306-40615-2"]),
    "PubMed": ("PMID: 12345678, PMCID: PMC1234567", ["PMID: 12345678", "PMCID: PMC1234567"]),
}  # fmt: skip


@pytest.mark.parametrize("text, spans", REFERENCES.values(), ids=REFERENCES.keys())
def test_references_are_masked_whole_with_their_prefix(text, spans):
    masked = mask(text)
    assert list(masked.spans) == spans
    assert restore(masked.text, masked) == text


@pytest.mark.parametrize(
    "text",
    [
        "It rises from 12.5 to 3.14159 and 2024.5 points.",
        "We count 1234.56789 and 1999.12345 (no month 34 or 99).",
        "Since 2015 ids have five digits: 2312.1729 is a number, as is 2013.0001.",
        "Before April 2007 there were none: 0612.1234 and 1.2/3 are numbers.",
        "A 10.5/100.0 ratio, 2312.17296.5 in a list, and 23120.17296.",
    ],
)
def test_ordinary_numbers_are_not_taken_for_references(text):
    assert mask(text).spans == ()


def test_references_come_back_as_written_from_a_translator_that_mangles_them():
    mangled = as_translators_write(CITING)
    assert not any(reference in mangled for reference in CITED)  # what would happen unmasked
    masked = mask(CITING)
    assert masked.spans == CITED
    assert restore(masked.text, masked) == CITING
    translated = restore(as_translators_write(masked.text), masked)
    for reference in CITED:
        assert translated.count(reference) == 1, reference
    # Decimal numbers are left to the translator, who may write them its own way.
    assert "12. 5" in translated and "3. 14159" in translated


def test_a_reference_broken_outside_the_placeholders_is_caught():
    source = "This extends arXiv:2312.17296 to graphs."
    found = problems(source, "这将 arXiv：2312.17296 扩展到图。", "zh")
    assert found == ["'arXiv:2312.17296' did not come back unchanged"]


@pytest.mark.parametrize("text, spans", CASES.values(), ids=CASES.keys())
def test_what_is_masked(text, spans):
    masked = mask(text)
    assert list(masked.spans) == spans
    assert restore(masked.text, masked) == text


def test_plain_words_and_ordinals_stay_translatable():
    masked = mask("We study the 1st of 10x more samples in the 1990s, e.g. images.")
    assert masked.spans == ()


def test_a_papers_own_name_is_masked_whole_even_with_math_inside():
    title = "$β$-OPSD: Deriving with Policy Optimization"
    assert system_names(title) == ("$β$-OPSD",)
    masked = mask("We propose $β$-OPSD, which beats OPSD.", system_names(title))
    assert masked.spans == ("$β$-OPSD", "OPSD")


@pytest.mark.parametrize(
    "title, names",
    [
        ("PanGu-π: Enhancing Language Model Architectures", ("PanGu-π",)),
        ("Mamba: Linear-Time Sequence Modeling", ("Mamba",)),
        ("Grounding DINO: Marrying DINO with Grounded Pre-Training", ("Grounding DINO",)),
        ("Stable Diffusion 3: Scaling Rectified Flow", ("Stable Diffusion 3",)),
        ("Position: Benchmarks Are Not Enough", ()),
        ("Compressed Hypothesis Testing: To Mix or Not to Mix?", ()),
        ("Beyond GRPO and On-Policy Distillation: An Empirical Study", ()),
        ("Learning to Trace Seiberg Dualities", ()),
    ],
)
def test_system_names_come_from_the_title(title, names):
    assert system_names(title) == names


# ---------------------------------------------------------------- restoring


def test_restore_accepts_what_translators_do_to_placeholders():
    masked = mask("We use $x$ and $y$ and $z$ and $w$.")
    mangled = "Wir nutzen [[ 0 ]] und ［［1］］ und 【【２】】 und [ [3] ]."
    assert restore(mangled, masked) == "Wir nutzen $x$ und $y$ und $z$ und $w$."


@pytest.mark.parametrize(
    "translated, complaint",
    [
        ("Wir nutzen [[0]].", "missing [[1]] ($y$)"),
        ("Wir nutzen [[0]], [[1]] und [[1]].", "repeated [[1]] ($y$)"),
        ("Wir nutzen [[0]], [[1]] und [[7]].", "unknown [[7]]"),
    ],
)
def test_every_placeholder_must_come_back_exactly_once(translated, complaint):
    masked = mask("We use $x$ and $y$.")
    with pytest.raises(MaskMismatch, match=re.escape(complaint)):
        restore(translated, masked)


def test_a_placeholder_lookalike_in_the_source_is_protected_too():
    source = "Results [[2]] and $x$ differ."
    masked = mask(source)
    assert masked.spans == ("[[2]]", "$x$")
    assert restore(masked.text, masked) == source


# ---------------------------------------------------------------- the seed page's failures

METHOD = (
    "We propose \\method{}, a framework that aligns vision and language models with far less"
    " data than previous methods, and we release everything."
)
CODE = (
    "Our models, data and training code are available at https://github.com/example/repo"
    " so that others can reproduce every result."
)
LEVERAGE = (
    "We leverage large pretrained models to improve retrieval, and we show that this helps"
    " across many benchmarks and settings."
)
PANGU_TITLE = "PanGu-π: Enhancing Language Model Architectures via Nonlinearity Compensation"
PANGU = (
    "We present PanGu-π, a new architecture that compensates for the lack of nonlinearity;"
    " PanGu-π matches much larger models on many benchmarks."
)


def test_a_translated_macro_with_full_width_braces_is_caught():
    damaged = (
        "我们提出了\\方法｛｝，一个以远少于以往方法的数据对齐视觉与语言模型的框架，并公开全部内容。"
    )
    found = problems(METHOD, damaged, "zh")
    assert any("\\method{}" in problem for problem in found)
    assert any("LaTeX command came back" in problem for problem in found)
    assert any("braces" in problem for problem in found)
    # Through placeholders the same damage is a missing one.
    masked = mask(METHOD)
    with pytest.raises(MaskMismatch, match="missing"):
        restore(masked.text.replace("[[0]]", "\\方法｛｝"), masked)


def test_a_full_width_colon_in_a_url_is_caught():
    damaged = (
        "我们的模型、数据和训练代码可在 https：//github.com/example/repo 获取，"
        "以便他人复现每个结果。"
    )
    found = problems(CODE, damaged, "zh")
    assert any("URL came back damaged" in problem for problem in found)
    assert any("https://github.com/example/repo" in problem for problem in found)


def test_runaway_repetition_is_caught():
    doubled = (
        "Wir Leververs Leververs große vortrainierte Modelle, um die Suche zu verbessern, und"
        " zeigen, dass dies in vielen Benchmarks und Umgebungen hilft."
    )
    assert any("repeats itself" in p for p in problems(LEVERAGE, doubled, "de"))
    looping = "我们利用大型预训练模型" + "来改进检索" * 6 + "。"
    assert any("runaway repetition" in p for p in problems(LEVERAGE, looping, "zh"))
    spread = " ".join(["大型预训练模型改进检索，"] + ["我们利用大型预训练模型改进检索，并且"] * 12)
    assert any("runaway repetition" in p for p in problems(LEVERAGE * 2, spread, "zh"))


def test_a_system_name_translated_word_by_word_is_caught():
    names = system_names(PANGU_TITLE)
    damaged = (
        "我们提出了盘古-π，一种弥补非线性不足的新架构；盘古-π 在许多基准上可与更大的模型相媲美。"
    )
    assert any("PanGu-π" in problem for problem in problems(PANGU, damaged, "zh", names))
    masked = mask(PANGU, names)
    assert masked.spans.count("PanGu-π") == 2
    with pytest.raises(MaskMismatch):
        restore(masked.text.replace("[[0]]", "盘古-π"), masked)


def test_a_far_too_short_or_empty_translation_is_caught():
    (found,) = problems(LEVERAGE, "Wir nutzen Modelle.", "de")
    assert found.startswith("the length is implausible: 0.1")
    assert problems(LEVERAGE, "  ", "de") == ["the translation is empty"]


SOURCE = (
    "We present PanGu-$\\pi$, a large language model (LLM) that compensates for the lack of"
    " nonlinearity. It reaches $92.1\\%$ on MMLU. Code: https://github.com/huawei-noah/Pangu-pi."
)

GOOD = {
    "zh": (
        "我们提出了 PanGu-$\\pi$，一种弥补非线性不足的大语言模型（LLM）。它在 MMLU 上达到"
        " $92.1\\%$。代码：https://github.com/huawei-noah/Pangu-pi。"
    ),
    "de": (
        "Wir stellen PanGu-$\\pi$ vor, ein großes Sprachmodell (LLM), das die fehlende"
        " Nichtlinearität ausgleicht. Es erreicht $92.1\\%$ auf MMLU. Code:"
        " https://github.com/huawei-noah/Pangu-pi."
    ),
    "ja": (
        "本稿では、非線形性の不足を補う大規模言語モデル（LLM）である PanGu-$\\pi$ を提案する。"
        "MMLU で $92.1\\%$ を達成する。コード：https://github.com/huawei-noah/Pangu-pi。"
    ),
}


@pytest.mark.parametrize("language", GOOD)
def test_a_good_translation_passes_every_check(language):
    names = system_names("PanGu-$\\pi$: Enhancing Language Model Architectures")
    assert problems(SOURCE, GOOD[language], language, names) == []
