"""Tests of the synthetic word-problem generator: determinism, arithmetic and answers."""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from fractions import Fraction

import pytest

from corpusforge.generators.seeding import derive_seed
from corpusforge.generators.stephint.answers import extract_final_answer, verify
from corpusforge.generators.stephint.synthetic import (
    TEMPLATES,
    generate_problem,
    iter_synthetic_problems,
    problem_rng,
    tex,
)

SEED = 20250101
VERIFIED_ITEMS = 2000

_INLINE_MATH = re.compile(r"(?<!\\)\$(.+?)(?<!\\)\$", re.DOTALL)
_FRACTION = re.compile(r"\\frac\{(-?\d+)\}\{(\d+)\}")
_ARITHMETIC = re.compile(r"^[\d\s+\-*/().]+$")
_ANSWER_FORM = re.compile(r"^-?(?:\d+|\\frac\{\d+\}\{\d+\})$")


def evaluate(expression: str) -> Fraction:
    """Evaluate +, -, *, / and parentheses over exact fractions."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            operations = {
                ast.Add: lambda: left + right,
                ast.Sub: lambda: left - right,
                ast.Mult: lambda: left * right,
                ast.Div: lambda: left / right,
            }
            return operations[type(node.op)]()
        raise ValueError(f"unsupported syntax in {expression!r}")

    return walk(ast.parse(expression.strip(), mode="eval"))


def numeric_sides(equation: str) -> list[Fraction]:
    """Return the values of the sides of an equation that contain only numbers."""
    values = []
    for side in equation.split("="):
        python = _FRACTION.sub(r"(\1/\2)", side)
        python = python.replace("\\times", "*").replace("\\div", "/").replace("\\cdot", "*")
        if _ARITHMETIC.match(python) and python.strip():
            values.append(evaluate(python))
    return values


def test_same_seed_same_records():
    first = [record for _, record in iter_synthetic_problems(SEED, 50)]
    second = [record for _, record in iter_synthetic_problems(SEED, 50)]

    assert first == second


def test_different_seeds_differ():
    first = [record["problem"] for _, record in iter_synthetic_problems(SEED, 50)]
    second = [record["problem"] for _, record in iter_synthetic_problems(SEED + 1, 50)]

    assert sum(a != b for a, b in zip(first, second, strict=True)) >= 45


def test_record_does_not_depend_on_shard_layout():
    whole = dict(iter_synthetic_problems(SEED, 40))
    second_half = dict(iter_synthetic_problems(SEED, 40, start=20))

    assert second_half == {index: whole[index] for index in range(20, 40)}


def test_record_stream_comes_from_derived_seed():
    rng = random.Random(derive_seed("stephint", SEED, "synthetic_math", 7))

    assert generate_problem(rng, 7) == generate_problem(problem_rng(SEED, 7), 7)


def test_records_have_math_layout():
    _, record = next(iter_synthetic_problems(SEED, 1))

    assert set(record) == {"problem", "solution", "answer", "subject", "unique_id"}
    assert record["unique_id"] == f"synthetic/{record['subject']}/0"
    assert record["subject"] in TEMPLATES


@pytest.mark.parametrize(
    ("value", "text"),
    [(Fraction(12), "12"), (Fraction(-3, 4), "-\\frac{3}{4}"), (Fraction(6, 8), "\\frac{3}{4}")],
)
def test_tex(value, text):
    assert tex(value) == text


def test_generated_answers_verify_against_own_solution():
    templates = Counter()
    step_counts = Counter()
    for index, record in iter_synthetic_problems(SEED, VERIFIED_ITEMS):
        solution = record["solution"]
        templates[record["subject"]] += 1
        paragraphs = solution.split("\n\n")
        step_counts[len(paragraphs) - 1] += 1

        assert paragraphs[-1] == f"The answer is $\\boxed{{{record['answer']}}}$.", index
        assert _ANSWER_FORM.match(record["answer"]), record["answer"]
        extraction = extract_final_answer(solution)
        assert extraction.answer == record["answer"], index
        result = verify(extraction.answer, record["answer"])
        assert result.verified, (index, result)
        assert result.method == "math_verify"

    assert set(templates) == set(TEMPLATES)
    assert min(step_counts) >= 3
    assert max(step_counts) <= 8


def test_every_equation_in_solutions_is_true():
    checked = 0
    for index, record in iter_synthetic_problems(SEED, VERIFIED_ITEMS):
        for math in _INLINE_MATH.findall(record["solution"]):
            if "=" not in math or "\\boxed" in math:
                continue
            values = numeric_sides(math)
            assert len(set(values)) <= 1, (index, math, values)
            checked += len(values) > 1

    assert checked > VERIFIED_ITEMS


def test_fraction_answers_are_reduced():
    for _, record in iter_synthetic_problems(SEED, 500):
        match = _FRACTION.search(record["answer"])
        if match:
            numerator, denominator = int(match.group(1)), int(match.group(2))
            assert Fraction(numerator, denominator).denominator == denominator
            assert denominator > 1


def test_evaluate_helper_catches_false_equations():
    assert numeric_sides("3 \\times 4 = 12 = \\frac{24}{2}") == [12, 12, 12]
    assert len(set(numeric_sides("3 \\times 4 = 13"))) == 2
