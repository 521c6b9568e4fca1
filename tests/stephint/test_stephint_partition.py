"""Tests of candidate boundaries, the heuristic scorer and adaptive partitioning."""

from __future__ import annotations

import json
import time

import pytest

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.stephint.chain import normalize_chain
from corpusforge.generators.stephint.partition import (
    DEFAULT_MAX_STEPS,
    DEFAULT_MIN_STEP_CHARS,
    HeuristicScorer,
    candidate_boundaries,
    partition,
)


class FixedScorer:
    """A scorer that returns given scores, to test the partition rule alone."""

    name = "fixed"

    def __init__(self, scores: list[float]):
        self.scores = scores

    def score(self, chain: str, candidates: list[int]) -> list[float]:
        return self.scores[: len(candidates)]


def step_texts(chain: str, spans: list[tuple[int, int]]) -> list[str]:
    return [chain[start:end] for start, end in spans]


def assert_covers(chain: str, spans: list[tuple[int, int]]) -> None:
    assert spans[0][0] == 0
    assert spans[-1][1] == len(chain)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end == start
    assert "".join(step_texts(chain, spans)) == chain


# Candidate boundaries


def test_sentence_ends_are_candidates():
    chain = "First we add. Then we multiply! Is it done? Yes."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:4] for offset in candidates] == ["Then", "Is i", "Yes."]


def test_offsets_include_whitespace_in_previous_step():
    chain = "One sentence.   \n  Next one."

    assert candidate_boundaries(chain) == [chain.index("Next")]


def test_decimal_points_are_not_candidates():
    assert candidate_boundaries("The price is 3.50 dollars and 0.5 more.") == []


def test_abbreviations_are_not_candidates():
    chain = "Use a rule, e.g. Pythagoras, i.e. A squared. Dr. Smith agrees. Done."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:5] for offset in candidates] == ["Dr. S", "Done."]


def test_lowercase_continuation_is_not_a_candidate():
    assert candidate_boundaries("It costs approx. five dollars. so on") == []


def test_list_number_is_not_a_candidate():
    chain = "Steps:\n1. Add the numbers.\n2. Divide."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:2] for offset in candidates] == ["1.", "2."]


def test_inline_math_is_protected():
    chain = "We get $x = \\frac{1}{2}. Then y = 2.$ So it ends. Final."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:5] for offset in candidates] == ["So it", "Final"]


def test_display_math_is_protected():
    chain = "Compute:\n\\[\na = 1.\nB = 2.\n\\]\nSo $a$ is 1.\n$$\nC = 3. D = 4.\n$$\nEnd."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:3] for offset in candidates] == ["\\[\n", "So ", "$$\n", "End"]


def test_align_environment_is_protected():
    chain = "We solve \\begin{align*}\n3x &= 6.\\\\\nx &= 2.\n\\end{align*}\n\nTherefore x is 2."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:4] for offset in candidates] == ["Ther"]


def test_boxed_outside_math_is_protected():
    chain = "The answer is \\boxed{1. Then 2.\n3} for sure. Next."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:4] for offset in candidates] == ["Next"]


def test_dollar_is_currency_in_plain_text():
    chain = "She pays $5. Then she pays $10.\nHe pays $3."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:4] for offset in candidates] == ["Then", "He p"]


def test_escaped_dollar_is_not_math():
    chain = "It costs \\$5. Then $x = \\frac{1}{2}. Y$ is set. Done."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:4] for offset in candidates] == ["Then", "Done"]


def test_unclosed_math_opener_does_not_hide_the_rest():
    chain = "Start \\[ x = 1. Next sentence. $$ never closed. Last one."

    assert len(candidate_boundaries(chain)) == 3


def test_line_breaks_are_candidates():
    chain = "a = 1\nb = 2\n\nc = 3"

    assert candidate_boundaries(chain) == [6, 13]


def test_think_markers_are_not_split_off():
    chain = "<think>\nLet me think.\nOkay.\n</think>\n\nThe answer is 2."

    candidates = candidate_boundaries(chain)

    assert [chain[offset:][:4] for offset in candidates] == ["Okay", "The "]


def test_no_candidates_at_chain_edges():
    assert candidate_boundaries("Hello.") == []
    assert candidate_boundaries("") == []


# Heuristic scorer


def test_heuristic_scores_are_in_range_and_deterministic():
    chain = (
        "Let x be the price.\n\nThen 3x = 12, so x = 4.\n\nWait, we also need tax:\n"
        "The tax is 1.\n\nTherefore the total is 5.\n</think>\n\nThe total is 5."
    )
    candidates = candidate_boundaries(chain)

    scores = HeuristicScorer().score(chain, candidates)

    assert len(scores) == len(candidates)
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert scores == HeuristicScorer().score(chain, candidates)


def test_heuristic_prefers_results_over_setup():
    chain = "Let x be the price.\n\nThen 3x = 12, so x = 4.\n\nNext part."
    scores = HeuristicScorer().score(chain, candidate_boundaries(chain))

    assert scores[1] > scores[0]


def test_heuristic_penalizes_unfinished_sentence():
    chain = "We need the following:\n\nThe sum is 10.\n\nEnd."
    scores = HeuristicScorer().score(chain, candidate_boundaries(chain))

    assert scores[0] < scores[1]


def test_heuristic_scores_end_of_thinking_highest():
    chain = "<think>\nThe sum is 10.\n\nI am sure.\n</think>\n\nThe sum is $\\boxed{10}$."
    scores = HeuristicScorer().score(chain, candidate_boundaries(chain))

    assert scores[-1] == max(scores)


# Partition rule


def test_boundary_where_score_drops():
    chain = "Aaaa aaaa.\nBbbb bbbb.\nCccc cccc.\nDddd dddd."
    scorer = FixedScorer([0.2, 0.9, 0.1])

    spans = partition(chain, scorer, min_chars=1, max_steps=10)

    assert step_texts(chain, spans) == ["Aaaa aaaa.\nBbbb bbbb.\n", "Cccc cccc.\n", "Dddd dddd."]


def test_last_candidate_compares_with_zero():
    chain = "Aaaa aaaa.\nBbbb bbbb.\nCccc cccc."
    scorer = FixedScorer([0.5, 0.3])

    spans = partition(chain, scorer, min_chars=1, max_steps=10)

    assert step_texts(chain, spans) == ["Aaaa aaaa.\n", "Bbbb bbbb.\n", "Cccc cccc."]


def test_tied_run_followed_by_drop_is_all_eligible():
    chain = "Aaaa.\nBbbb.\nCccc.\nDddd."
    scorer = FixedScorer([0.6, 0.6, 0.6])

    spans = partition(chain, scorer, min_chars=1, max_steps=10)

    assert len(spans) == 4


def test_tied_run_followed_by_rise_is_not_eligible():
    chain = "Aaaa.\nBbbb.\nCccc.\nDddd."
    scorer = FixedScorer([0.6, 0.6, 0.9])

    spans = partition(chain, scorer, min_chars=1, max_steps=10)

    assert step_texts(chain, spans) == ["Aaaa.\nBbbb.\nCccc.\n", "Dddd."]


def test_min_chars_keeps_higher_boundary():
    chain = "Aa.\nBb.\nCccccccccccccccccccc."
    scorer = FixedScorer([0.4, 0.8])

    # Both candidates are eligible only if each beats its successor; 0.4 < 0.8 here,
    # so only the second one is, and it is 8 characters from the start.
    assert partition(chain, scorer, min_chars=10, max_steps=10) == [(0, len(chain))]
    assert len(partition(chain, scorer, min_chars=5, max_steps=10)) == 2


def test_min_chars_between_boundaries():
    chain = "Aaaaaaaaaa.\nBb.\nCccccccccc.\nDddddddddd."
    scorer = FixedScorer([0.9, 0.5, 0.4])

    spans = partition(chain, scorer, min_chars=8, max_steps=10)

    starts = [start for start, _ in spans]
    assert all(later - earlier >= 8 for earlier, later in zip(starts, starts[1:], strict=False))
    assert step_texts(chain, spans)[0] == "Aaaaaaaaaa.\n"


def test_max_steps_keeps_highest_scores():
    chain = "".join(f"Sentence {index}.\n" for index in range(10)).rstrip()
    scorer = FixedScorer([0.9, 0.1, 0.8, 0.1, 0.7, 0.1, 0.95, 0.1, 0.6])

    spans = partition(chain, scorer, min_chars=1, max_steps=3)

    assert len(spans) == 3
    assert [chain[start:][:10] for start, _ in spans[1:]] == ["Sentence 1", "Sentence 7"]


def test_max_steps_one_returns_whole_chain():
    chain = "One. Two. Three."

    assert partition(chain, HeuristicScorer(), min_chars=1, max_steps=1) == [(0, len(chain))]


def test_empty_chain_has_no_steps():
    assert partition("", HeuristicScorer()) == []


def test_chain_without_candidates_is_one_step():
    assert partition("x = 5", HeuristicScorer()) == [(0, 5)]


@pytest.mark.parametrize(("min_chars", "max_steps"), [(0, 5), (10, 0)])
def test_invalid_limits_raise(min_chars, max_steps):
    with pytest.raises(ConfigError, match="must be at least 1"):
        partition("A. B.", HeuristicScorer(), min_chars=min_chars, max_steps=max_steps)


def test_scorer_with_wrong_length_raises():
    with pytest.raises(ValueError, match="returned 0 scores for 2 candidates"):
        partition("Aaa. Bbb. Ccc.", FixedScorer([]), min_chars=1)


def test_scorer_out_of_range_raises():
    with pytest.raises(ValueError, match=r"p_end 1\.5 outside \[0, 1\]"):
        partition("Aaa. Bbb. Ccc.", FixedScorer([1.5, 0.1]), min_chars=1)


# Real chains


def test_real_chains_partition_invariants(reasoning_dir):
    scorer = HeuristicScorer()
    sources = [
        ("gsm8k_test_200.jsonl", "gsm8k", "answer"),
        ("math500_200.jsonl", "math", "solution"),
        ("longcot_sky_t1_120.jsonl", "longcot", "model_output"),
    ]
    for file_name, style, field in sources:
        lines = (reasoning_dir / file_name).read_text(encoding="utf-8").splitlines()
        for line in lines:
            chain = normalize_chain(style, json.loads(line)[field])
            spans = partition(chain, scorer)

            assert_covers(chain, spans)
            assert len(spans) <= DEFAULT_MAX_STEPS
            for start, _ in spans[1:]:
                assert start >= DEFAULT_MIN_STEP_CHARS
            assert spans == partition(chain, scorer)


def test_gsm8k_steps_end_at_line_ends(reasoning_dir):
    lines = (reasoning_dir / "gsm8k_test_200.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        chain = normalize_chain("gsm8k", json.loads(line)["answer"])
        steps = step_texts(chain, partition(chain, HeuristicScorer()))

        assert steps[-1].startswith("#### ") or "\n#### " in steps[-1]
        for step in steps[:-1]:
            assert step.endswith("\n")


def test_megabyte_chain_is_partitioned_quickly():
    paragraph = (
        "We compute $3 \\times 4 = 12$ and note that 12.5 is not an integer. "
        "Therefore the total is 12.\n\nNext, e.g. for 5 items, the cost is 5 * 2 = 10.\n\n"
    )
    chain = (paragraph * (1_000_000 // len(paragraph) + 1)) + "The answer is $\\boxed{12}$."
    assert len(chain) > 1_000_000

    start = time.monotonic()
    spans = partition(chain, HeuristicScorer())
    elapsed = time.monotonic() - start

    assert_covers(chain, spans)
    assert len(spans) == DEFAULT_MAX_STEPS
    assert elapsed < 20


def test_many_unclosed_openers_stay_fast():
    chain = "Start \\[ x. " * 50_000 + "\\boxed{ " * 2_000 + "End."

    start = time.monotonic()
    candidates = candidate_boundaries(chain)

    assert time.monotonic() - start < 20
    assert len(candidates) > 0
