"""Tests of final-answer extraction and math-verify based verification."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from corpusforge.generators.stephint.answers import (
    METHOD_MATH_VERIFY,
    METHOD_STRING_MATCH,
    AnswerExtraction,
    clean_answer,
    clear_verify_cache,
    extract_final_answer,
    verify,
)
from corpusforge.generators.stephint.chain import normalize_chain

# Extraction


def test_boxed_answer_and_span():
    chain = "So $x = \\boxed{42}$."
    extraction = extract_final_answer(chain)

    assert extraction.answer == "42"
    assert extraction.reason is None
    start, end = extraction.span
    assert chain[start:end] == "\\boxed{42}"


def test_nested_braces():
    chain = "Thus $\\boxed{\\frac{\\sqrt{3}}{2}}$ and more text {with braces}."

    assert extract_final_answer(chain).answer == "\\frac{\\sqrt{3}}{2}"


def test_escaped_braces_do_not_count():
    chain = "The set is $\\boxed{\\{1, 2\\}}$."

    assert extract_final_answer(chain).answer == "\\{1, 2\\}"


def test_last_box_wins():
    chain = "First guess $\\boxed{1}$, but actually $\\boxed{2}$."

    assert extract_final_answer(chain).answer == "2"


def test_fbox_is_read():
    assert extract_final_answer("Answer: \\fbox{7}").answer == "7"


def test_boxed_with_space_before_brace():
    assert extract_final_answer("Answer: \\boxed {7}").answer == "7"


def test_unbalanced_boxed():
    chain = "Answer: $\\boxed{\\frac{1}{2}$ and the text ends"
    extraction = extract_final_answer(chain)

    assert extraction == AnswerExtraction(None, "unbalanced_boxed", (9, len(chain)))


def test_empty_box_is_no_answer():
    assert extract_final_answer("Answer: $\\boxed{ }$").reason == "no_final_answer"


def test_no_final_answer():
    extraction = extract_final_answer("We are not sure what the answer is.")

    assert extraction == AnswerExtraction(None, "no_final_answer", None)


def test_solution_part_preferred_over_thinking():
    chain = "<think>\nmaybe $\\boxed{3}$\n</think>\n\nIt is $\\boxed{4}$."

    assert extract_final_answer(chain).answer == "4"


def test_thinking_part_used_when_solution_has_no_box():
    chain = "<think>\nso $\\boxed{3}$\n</think>\n\nThe solution was cut"
    extraction = extract_final_answer(chain)

    assert extraction.answer == "3"
    assert extraction.span[1] < chain.index("</think>")


def test_gsm8k_line_with_commas():
    chain = "He made 70,000 dollars.\n#### 70,000"
    extraction = extract_final_answer(chain)

    assert extraction.answer == "70000"
    start, end = extraction.span
    assert chain[start:end] == "#### 70,000"


def test_box_preferred_over_gsm8k_line():
    assert extract_final_answer("#### 5\nso $\\boxed{6}$").answer == "6"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("1,000", "1000"),
        ("1{,}234{,}567", "1234567"),
        ("-12,345.5", "-12345.5"),
        ("42.", "42"),
        (" 3.5 ", "3.5"),
        ("(1,2)", "(1,2)"),
        ("1,2,3", "1,2,3"),
        ("12,34", "12,34"),
    ],
)
def test_clean_answer(raw, clean):
    assert clean_answer(raw) == clean


def test_longcot_idx25_answer_comes_from_thinking(reasoning_dir):
    lines = (reasoning_dir / "longcot_sky_t1_120.jsonl").read_text(encoding="utf-8").splitlines()
    record = next(json.loads(line) for line in lines if json.loads(line)["idx"] == 25)
    chain = normalize_chain("longcot", record["model_output"])

    extraction = extract_final_answer(chain)

    assert extraction.answer == "-2,1"
    assert extraction.span[0] < chain.index("</think>")
    assert verify(extraction.answer, record["reference_answer"]).verified


@pytest.mark.parametrize("idx", [45, 139])
def test_longcot_traces_without_box_have_no_answer(reasoning_dir, idx):
    lines = (reasoning_dir / "longcot_sky_t1_120.jsonl").read_text(encoding="utf-8").splitlines()
    record = next(json.loads(line) for line in lines if json.loads(line)["idx"] == idx)

    extraction = extract_final_answer(normalize_chain("longcot", record["model_output"]))

    assert extraction.reason == "no_final_answer"


# Verification


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{243}{625}", "\\frac{243}{625}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("18", "18"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("-\\frac{3}{4}", "-0.75"),
    ],
)
def test_verify_equal_answers(predicted, reference):
    result = verify(predicted, reference)

    assert result.verified, result
    assert result.method == METHOD_MATH_VERIFY


@pytest.mark.parametrize(("predicted", "reference"), [("17", "18"), ("\\frac{1}{3}", "0.33")])
def test_verify_different_answers(predicted, reference):
    result = verify(predicted, reference)

    assert not result.verified
    assert result.method == METHOD_MATH_VERIFY


def test_verify_text_answer():
    result = verify("\\text{Monday}", "\\text{Monday}")

    assert result.verified


def test_verify_empty_answer_is_not_verified():
    result = verify("", "5")

    assert not result.verified
    assert result.detail == "empty answer"


def test_verify_power_tower_skips_sympy():
    start = time.monotonic()
    result = verify("9^{9^{9^{9}}}", "5")

    assert time.monotonic() - start < 2
    assert not result.verified
    assert result.method == METHOD_STRING_MATCH
    assert "power tower" in result.detail


def test_verify_in_worker_thread():
    # A cached verdict would skip math-verify, which is what this test exercises.
    clear_verify_cache()
    results = []
    errors = []

    def run():
        try:
            results.append(verify("\\frac{1}{2}", "0.5"))
        except Exception as error:  # noqa: BLE001 - the assertion below reports it
            errors.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)

    assert errors == []
    assert results[0].verified


def test_verify_cache_reuses_verdict(monkeypatch):
    from corpusforge.generators.stephint import answers

    clear_verify_cache()
    first = verify("\\frac{3}{4}", "0.75")

    def fail(*args, **kwargs):
        raise AssertionError("math-verify parse ran")

    monkeypatch.setattr(answers, "parse", fail)
    second = verify("\\frac{3}{4}", "0.75")

    assert first.verified
    assert second == first
    clear_verify_cache()
    with pytest.raises(AssertionError, match="parse ran"):
        verify("\\frac{3}{4}", "0.75")


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_verify_keeps_outer_alarm_timer():
    clear_verify_cache()
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    signal.setitimer(signal.ITIMER_REAL, 300)
    try:
        assert verify("\\frac{1}{2}", "0.5").verified
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert remaining > 0


def test_math500_wrapping_raises_verified_rate(reasoning_dir):
    lines = (reasoning_dir / "math500_200.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    wrapped = 0
    bare = 0
    for record in records:
        predicted = extract_final_answer(record["solution"]).answer
        assert predicted is not None, record["unique_id"]
        # Count only symbolic matches, because the string fallback hides the parsing difference.
        result = verify(predicted, record["answer"])
        wrapped += result.verified and result.method == METHOD_MATH_VERIFY
        result = verify(predicted, record["answer"], wrap_latex=False)
        bare += result.verified and result.method == METHOD_MATH_VERIFY

    wrapped_rate = wrapped / len(records)
    bare_rate = bare / len(records)
    print(f"MATH-500 math-verify rate: wrapped in $...$ {wrapped_rate:.3f}, bare {bare_rate:.3f}")
    assert wrapped_rate >= 0.95
    assert wrapped_rate > bare_rate
