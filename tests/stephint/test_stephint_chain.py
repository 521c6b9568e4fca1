"""Tests of chain normalization: GSM8K annotations and both thinking-marker forms."""

from __future__ import annotations

import json

import pytest

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.stephint.chain import normalize_chain

# DeepSeek-R1 style output; no real sample uses this form, so the fixture is written here.
R1_TRACE = (
    "<think>\r\n\r\nThe sum of the first three primes is 2 + 3 + 5.\r\n\r\n"
    "That is 10. Let me double-check: 2 + 3 = 5 and 5 + 5 = 10.\r\n\r\n</think>\r\n\r\n\r\n"
    "The first three primes are 2, 3 and 5, so their sum is $\\boxed{10}$.\r\n"
)
R1_CHAIN = (
    "<think>\nThe sum of the first three primes is 2 + 3 + 5.\n\n"
    "That is 10. Let me double-check: 2 + 3 = 5 and 5 + 5 = 10.\n</think>\n\n"
    "The first three primes are 2, 3 and 5, so their sum is $\\boxed{10}$."
)


def test_gsm8k_annotations_removed():
    source = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes $<<9*2=18>>18.\n#### 18"

    chain = normalize_chain("gsm8k", source)

    assert chain == "Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes $18.\n#### 18"


def test_gsm8k_annotations_kept_in_math_style():
    assert normalize_chain("math", "a <<b>> c") == "a <<b>> c"


def test_gsm8k_sample_has_no_annotations_left(reasoning_dir):
    lines = (reasoning_dir / "gsm8k_test_200.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        chain = normalize_chain("gsm8k", json.loads(line)["answer"])
        assert "<<" not in chain
        assert ">>" not in chain
        assert chain.splitlines()[-1].startswith("#### ")


def test_line_endings_and_outer_whitespace_normalized():
    assert normalize_chain("math", "  \r\nfirst\r\nsecond\rthird\n\n ") == "first\nsecond\nthird"


def test_r1_form_normalized():
    assert normalize_chain("longcot", R1_TRACE) == R1_CHAIN


def test_r1_form_without_opening_marker():
    trace = R1_TRACE.removeprefix("<think>")

    assert normalize_chain("longcot", trace) == R1_CHAIN


def test_r1_form_without_closing_marker():
    chain = normalize_chain("longcot", "<think>\nStill thinking about 2 + 2.\n")

    assert chain == "<think>\nStill thinking about 2 + 2.\n</think>"


def test_r1_form_with_empty_thinking():
    assert normalize_chain("longcot", "<think></think>Answer: $\\boxed{1}$") == (
        "<think>\n\n</think>\n\nAnswer: $\\boxed{1}$"
    )


def test_sky_t1_form_matches_r1_form():
    sky = R1_TRACE.replace("<think>", "<|begin_of_thought|>").replace(
        "</think>", "<|end_of_thought|>\n\n<|begin_of_solution|>"
    )
    sky += "<|end_of_solution|>\n"

    assert normalize_chain("longcot", sky) == R1_CHAIN


def test_sky_t1_form_without_end_of_solution():
    sky = "<|begin_of_thought|>\nthink\n<|end_of_thought|>\n\n<|begin_of_solution|>\nsolve"

    assert normalize_chain("longcot", sky) == "<think>\nthink\n</think>\n\nsolve"


def test_sky_t1_text_after_end_of_solution_dropped():
    sky = "<|begin_of_thought|>a<|end_of_thought|><|begin_of_solution|>b<|end_of_solution|>tail"

    assert normalize_chain("longcot", sky) == "<think>\na\n</think>\n\nb"


def test_longcot_sample_normalized(reasoning_dir):
    markers = ("<|begin_of_thought|>", "<|end_of_thought|>", "<|begin_of_solution|>")
    markers += ("<|end_of_solution|>",)
    lines = (reasoning_dir / "longcot_sky_t1_120.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        record = json.loads(line)
        chain = normalize_chain("longcot", record["model_output"])

        assert chain.startswith("<think>\n"), record["idx"]
        assert chain.count("</think>") == 1, record["idx"]
        assert "\n</think>\n\n" in chain, record["idx"]
        assert not any(marker in chain for marker in markers), record["idx"]
        assert chain == chain.strip()


def test_longcot_sample_without_end_of_solution_keeps_solution(reasoning_dir):
    lines = (reasoning_dir / "longcot_sky_t1_120.jsonl").read_text(encoding="utf-8").splitlines()
    records = {json.loads(line)["idx"]: json.loads(line) for line in lines}

    chain = normalize_chain("longcot", records[215]["model_output"])
    solution = chain.split("</think>\n\n", 1)[1]

    assert "<|end_of_solution|>" not in records[215]["model_output"]
    assert len(solution) > 100


def test_unknown_style_raises():
    with pytest.raises(ConfigError, match="unknown solution style 'r1'"):
        normalize_chain("r1", "text")
