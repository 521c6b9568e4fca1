"""Tests of the verl reward function, including loading it by file path as verl does."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from corpusforge.generators.stephint import verl_reward
from corpusforge.generators.stephint.verl_reward import compute_score, extract_last_boxed

REWARD_PATH = Path(verl_reward.__file__)


def score(solution: object, ground_truth: object) -> float:
    return compute_score("corpusforge/stephint", solution, ground_truth)


def test_correct_answer():
    assert score("3 * 4 = 12, so the total is \\boxed{14}.", "14") == 1.0


def test_wrong_answer():
    assert score("The total is \\boxed{15}.", "14") == 0.0


def test_no_box():
    assert score("The total is 14.", "14") == 0.0


def test_empty_box():
    assert score("The total is \\boxed{}.", "14") == 0.0


def test_last_box_counts():
    assert score("First \\boxed{15}, corrected: \\boxed{14}", "14") == 1.0
    assert score("First \\boxed{14}, then \\boxed{15}", "14") == 0.0


def test_unclosed_last_box():
    assert score("\\boxed{14} and then \\boxed{\\frac{1}{2}", "14") == 0.0


def test_nested_braces():
    assert score("So \\boxed{\\frac{\\sqrt{3}}{2}}.", "\\frac{\\sqrt{3}}{2}") == 1.0
    assert score("So \\boxed{\\frac{\\sqrt{3}}{2}}.", "\\frac{\\sqrt{2}}{2}") == 0.0


def test_fraction_equals_decimal():
    assert score("\\boxed{0.5}", "\\frac{1}{2}") == 1.0
    assert score("\\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert score("\\boxed{\\dfrac{2}{4}}", "\\frac{1}{2}") == 1.0


def test_ground_truth_with_dollars():
    assert score("\\boxed{\\frac{1}{2}}", "$0.5$") == 1.0


def test_ground_truth_list():
    assert score("\\boxed{72}", ["72"]) == 1.0
    assert score("\\boxed{72}", ("71", "72")) == 1.0
    assert score("\\boxed{72}", ["71"]) == 0.0
    assert score("\\boxed{72}", []) == 0.0


@pytest.mark.parametrize(
    "solution",
    [
        None,
        42,
        b"\\boxed{14}",
        "",
        "}}}{{{",
        "\\boxed{",
        "\\boxed{}}}",
        "\\boxed{\\frac{",
        "\\boxed{\\left\\{ x \\right.}",
        "\\boxed{$$$}",
        "\\boxed{\\unknowncommand{x}{}}",
        "\\boxed" * 1000,
        "\x00\\boxed{\udcff}",
    ],
)
def test_garbage_solution_scores_zero(solution):
    assert score(solution, "14") == 0.0


@pytest.mark.parametrize("ground_truth", [None, "", "}}{{", "\\frac{", 14.5, {"answer": "14"}])
def test_garbage_ground_truth_scores_zero(ground_truth):
    assert score("\\boxed{14}", ground_truth) == 0.0


def test_numeric_ground_truth():
    assert score("\\boxed{14}", 14) == 1.0


def test_any_data_source_and_extra_arguments():
    extra_info = {"index": 3, "hint_level": 1}

    assert compute_score("unknown/source", "\\boxed{14}", "14", extra_info) == 1.0
    assert compute_score("", "\\boxed{14}", "14", extra_info=None, unused_kwarg=1) == 1.0


def test_call_from_worker_thread():
    results = []
    worker = threading.Thread(
        target=lambda: results.append(score("\\boxed{\\frac{1}{2}}", "0.5")),
    )
    worker.start()
    worker.join(timeout=60)

    assert not worker.is_alive()
    assert results == [1.0]


def test_extract_last_boxed():
    assert extract_last_boxed("\\boxed{1} \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert extract_last_boxed("\\boxed {7}") == "7"
    assert extract_last_boxed("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"
    assert extract_last_boxed("\\boxed{\\}}") == "\\}"
    assert extract_last_boxed("\\boxed{1} \\boxedtext") == "1"
    assert extract_last_boxed("\\boxed{1} \\boxed{2") is None
    assert extract_last_boxed("no box") is None


def test_loads_by_file_path():
    # verl's get_custom_reward_fn loads the file under the module name "custom_module".
    spec = importlib.util.spec_from_file_location("custom_module", REWARD_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.compute_score("any", "\\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert module.compute_score("any", "\\boxed{3}", "0.5") == 0.0


def test_standalone_without_corpusforge(tmp_path: Path):
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('custom_module', {str(REWARD_PATH)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.compute_score('x', '\\\\boxed{0.5}', '\\\\frac{1}{2}') == 1.0\n"
        "loaded = sorted(name for name in sys.modules if name.startswith('corpusforge'))\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"
