"""Reward function for verl's custom reward hook: 1.0 when the last `\\boxed{}` answer is correct.

verl loads this file by path, so it imports only the standard library and math_verify:

    custom_reward_function.path=<checkout>/generators/stephint/verl_reward.py
    custom_reward_function.name=compute_score

verl's built-in `default_compute_score` raises NotImplementedError for a `data_source` it does
not list, which includes "corpusforge/stephint". This function scores every data source the same
way.
"""

from __future__ import annotations

from math_verify import parse, verify
from math_verify.errors import TimeoutException

_BOXED_COMMAND = "\\boxed"


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    **kwargs,
) -> float:
    """Score a response: 1.0 when its last `\\boxed{...}` is equivalent to `ground_truth`.

    Returns 0.0 when the response has no complete `\\boxed{...}`, when either side fails to
    parse, or on any error, so a malformed rollout never stops training. `ground_truth` may
    also be a list of accepted answers (verl's README example stores `["72"]`), and any match
    scores 1.0. `data_source`, `extra_info` and the `reward_kwargs` that verl passes as keyword
    arguments are accepted and ignored.

    math_verify's timeouts are disabled because they use `signal.alarm`, which raises
    ValueError outside the main thread, and verl's reward managers may call this from worker
    threads.
    NOTE: with the timeouts off, a pathological expression can keep sympy busy without limit.
    The caller has to bound the time, for example by scoring in a worker process.
    """
    try:
        if not isinstance(solution_str, str):
            return 0.0
        answer = extract_last_boxed(solution_str)
        if answer is None or not answer.strip():
            return 0.0
        predicted = _parse_latex(answer)
        if not predicted:
            return 0.0
        for gold_text in _ground_truth_texts(ground_truth):
            gold = _parse_latex(gold_text)
            if gold and verify(gold, predicted, timeout_seconds=None):
                return 1.0
        return 0.0
    except (Exception, TimeoutException):
        return 0.0


def extract_last_boxed(text: str) -> str | None:
    """Return the content of the last `\\boxed{...}` in `text`, or None.

    Braces are matched with a depth counter, so nested groups such as `\\frac{1}{2}` stay
    whole. A backslash escapes the next character, so `\\{` and `\\}` do not count. When the
    last `\\boxed{` is never closed (a truncated response), the result is None rather than an
    earlier box, because an earlier box is usually an intermediate result.
    """
    search_end = len(text)
    while True:
        start = text.rfind(_BOXED_COMMAND, 0, search_end)
        if start < 0:
            return None
        position = start + len(_BOXED_COMMAND)
        while position < len(text) and text[position].isspace():
            position += 1
        if position < len(text) and text[position] == "{":
            return _read_group(text, position)
        # `\boxedfoo` or `\boxed 5`: not a braced box, so look further left.
        search_end = start


def _read_group(text: str, open_index: int) -> str | None:
    """Return the text between the brace at `open_index` and its matching close, or None."""
    depth = 0
    position = open_index
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : position]
        position += 1
    return None


def _ground_truth_texts(ground_truth) -> list[str]:
    """Return the accepted answers: one string, or each item of a list, tuple or numpy array."""
    if isinstance(ground_truth, str):
        return [ground_truth]
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, list | tuple):
        return [str(item) for item in ground_truth if item is not None]
    if ground_truth is None:
        return []
    return [str(ground_truth)]


def _parse_latex(answer: str) -> list:
    """Parse an answer as LaTeX math, adding `$...$` delimiters when it has no `$`."""
    text = answer.strip()
    if "$" not in text:
        text = f"${text}$"
    return parse(text, parsing_timeout=None)
