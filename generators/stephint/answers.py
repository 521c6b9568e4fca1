"""Extract the final answer of a reasoning chain and check it against the reference answer.

Verification uses math-verify 0.9.0 (`math_verify.parse` and `math_verify.verify`).

Timeouts: math-verify bounds each parse and comparison with `signal.alarm`, which
works only in the main thread, and its clean-up calls `signal.alarm(0)`, which
would also cancel an outer `SIGALRM` timer such as the one Airflow's task SDK sets
for `execution_timeout`. So `verify` passes a timeout of `VERIFY_TIMEOUT_SECONDS`
only when it runs in the main thread and no real-time interval timer is pending.
Otherwise it passes `parsing_timeout=None` and `timeout_seconds=None`, and relies
on the outer timer, if any. In both cases answers that are known to make SymPy
run for minutes (power towers, exponents or integers with many digits, large
factorials, very long strings) skip the symbolic check and are compared as
normalized strings, so their verdict does not depend on machine speed.

Caching: each process keeps the `VERIFY_CACHE_SIZE` most recently used verdicts,
keyed by both answers, `wrap_latex` and the timeout in use. math-verify's
own parse cache holds only 20 LaTeX strings, and parsing took about 80% of
the time to generate a 1000-record synthetic shard (bench/README.md), while
answers repeat often: 100,000 synthetic records have about 6,200 distinct
answers. Verdicts depend only on the key, except that a parse or comparison
that hit the timeout is reused instead of being retried.
"""

from __future__ import annotations

import functools
import re
import signal
import threading
from dataclasses import dataclass

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
from math_verify import verify as math_verify_verify

from corpusforge.generators.stephint.chain import THINK_CLOSE

# Seconds per math-verify parse or comparison, used only where a signal timer is safe.
VERIFY_TIMEOUT_SECONDS = 5

# Verdicts kept per process. An entry took about 260 bytes plus its two answer
# strings (measured with tracemalloc), so memory stays bounded however many
# records a process generates.
VERIFY_CACHE_SIZE = 4096

# Answers longer than this many characters are compared as strings only.
MAX_SYMBOLIC_ANSWER_CHARS = 300

METHOD_MATH_VERIFY = "math_verify"
METHOD_STRING_MATCH = "string_match"

_BOX_OPENER = re.compile(r"\\(?:boxed|fbox)\s*\{")
# The GSM8K final-answer line, `#### 42`; group 1 is the answer.
GSM8K_ANSWER_LINE = re.compile(r"^####[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_THOUSANDS_NUMBER = re.compile(r"^[-+]?\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?$")
_THOUSANDS_SEPARATOR = re.compile(r",|\{,\}")
# A power tower of integers (`9^{9^{9}}`, `10**10**10`) or an exponent of 6 or more
# digits makes SymPy compute a huge integer.
_HUGE_POWER = re.compile(r"(?:\^|\*\*)\s*[{(]?\s*(?:\d+\s*(?:\^|\*\*)|\d{6,})")
_LONG_INTEGER = re.compile(r"\d{40,}")
_LARGE_FACTORIAL = re.compile(r"\d{4,}\s*!")

_WHITESPACE = re.compile(r"\s+")

_EXTRACTION_CONFIG = (LatexExtractionConfig(), ExprExtractionConfig())


@dataclass(frozen=True)
class AnswerExtraction:
    """The final answer found in a chain.

    `answer` is None when no answer was found, and `reason` then says why
    (`no_final_answer` or `unbalanced_boxed`). `span` is the (start, end) character
    range of the answer marker in the chain, such as the whole `\\boxed{...}` or
    the `#### N` line.
    """

    answer: str | None
    reason: str | None
    span: tuple[int, int] | None


@dataclass(frozen=True)
class Verification:
    """The result of comparing a predicted answer with the reference answer."""

    verified: bool
    method: str
    detail: str


def extract_final_answer(chain: str) -> AnswerExtraction:
    """Find the final answer of `chain`.

    The answer is the content of the last `\\boxed{...}` or `\\fbox{...}` with
    balanced braces. After `</think>`, the solution part is searched first, and the
    thinking part only when the solution has no box. Without any box, the last
    GSM8K `#### N` line is used. Thousands separators (`1,000`, `1{,}000`) and a
    trailing period are removed from the answer.
    """
    close_at = chain.find(THINK_CLOSE)
    if close_at >= 0:
        regions = [(close_at + len(THINK_CLOSE), len(chain)), (0, close_at)]
    else:
        regions = [(0, len(chain))]

    for start, end in regions:
        boxed = _last_box(chain, start, end)
        if boxed is not None:
            return boxed

    gsm8k_lines = list(GSM8K_ANSWER_LINE.finditer(chain))
    if gsm8k_lines:
        last = gsm8k_lines[-1]
        answer = clean_answer(last.group(1))
        if answer:
            return AnswerExtraction(answer, None, (last.start(), last.end()))
    return AnswerExtraction(None, "no_final_answer", None)


def _last_box(chain: str, start: int, end: int) -> AnswerExtraction | None:
    """Return the last box opened in chain[start:end], or None when there is none."""
    openers = list(_BOX_OPENER.finditer(chain, start, end))
    if not openers:
        return None

    opener = openers[-1]
    close = find_closing_brace(chain, opener.end() - 1)
    if close is None:
        return AnswerExtraction(None, "unbalanced_boxed", (opener.start(), len(chain)))

    answer = clean_answer(chain[opener.end() : close])
    if not answer:
        return AnswerExtraction(None, "no_final_answer", (opener.start(), close + 1))
    return AnswerExtraction(answer, None, (opener.start(), close + 1))


def find_closing_brace(text: str, open_at: int) -> int | None:
    """Return the index of the `}` matching the `{` at `open_at`, or None if it is unbalanced.

    Escaped braces (`\\{`, `\\}`) do not count.
    """
    depth = 0
    index = open_at
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def clean_answer(answer: str) -> str:
    """Strip an extracted answer, drop a trailing period and remove thousands separators."""
    answer = answer.strip()
    if answer.endswith(".") and not answer.endswith(".."):
        answer = answer[:-1].rstrip()
    if _THOUSANDS_NUMBER.match(answer):
        answer = _THOUSANDS_SEPARATOR.sub("", answer)
    return answer


def normalize_answer_text(answer: str) -> str:
    """Return `answer` in the normalized string form used for string equality.

    Removes `$`, LaTeX spacing commands, `\\left`/`\\right`, `^\\circ`, a trailing
    period, thousands separators and whitespace next to a symbol, and writes
    `\\dfrac`/`\\tfrac` as `\\frac`. Whitespace between two letters or digits becomes
    one space, so `x y` stays two tokens and `\\pi r` keeps its meaning.
    """
    text = clean_answer(answer)
    text = text.replace("\\$", "").replace("$", "")
    for spacing in ("\\!", "\\,", "\\;", "\\:", "\\ ", "\\quad", "\\qquad"):
        text = text.replace(spacing, "")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = text.replace("^\\circ", "").replace("^{\\circ}", "")
    text = _WHITESPACE.sub(lambda run: _squeezed(text, run.start(), run.end()), text)
    return clean_answer(text)


def _squeezed(text: str, start: int, end: int) -> str:
    """Return one space for whitespace between two ASCII letters or digits, else nothing."""
    if start == 0 or end == len(text):
        return ""
    before, after = text[start - 1], text[end]
    if before.isascii() and before.isalnum() and after.isascii() and after.isalnum():
        return " "
    return ""


def verify(predicted: str, reference: str, *, wrap_latex: bool = True) -> Verification:
    """Check whether `predicted` is mathematically equal to `reference`.

    Both answers are parsed with math-verify as LaTeX. With `wrap_latex` (the
    default) each bare answer is wrapped in `$...$` first, because math-verify
    finds far fewer expressions in a bare LaTeX string. When either side yields no
    expression, or the answers are too costly to compare symbolically, the
    normalized strings are compared instead. A symbolic mismatch still counts as
    verified when the normalized strings are equal. Verdicts are cached (see
    the module docstring).
    """
    return _verify_cached(predicted, reference, wrap_latex, _safe_timeout_seconds())


def clear_verify_cache() -> None:
    """Forget every cached verdict, so the next `verify` call runs math-verify again."""
    _verify_cached.cache_clear()


@functools.lru_cache(maxsize=VERIFY_CACHE_SIZE)
def _verify_cached(
    predicted: str, reference: str, wrap_latex: bool, timeout: int | None
) -> Verification:
    predicted_text = normalize_answer_text(predicted)
    reference_text = normalize_answer_text(reference)
    if not predicted_text or not reference_text:
        return Verification(False, METHOD_STRING_MATCH, "empty answer")
    strings_equal = predicted_text == reference_text

    costly = _too_costly(predicted) or _too_costly(reference)
    if costly:
        return Verification(strings_equal, METHOD_STRING_MATCH, f"skipped math-verify: {costly}")

    # NOTE: where the timeout applies, an answer that takes SymPy longer than
    # VERIFY_TIMEOUT_SECONDS is rejected, so that verdict can depend on machine speed.
    reference_latex = _as_latex(reference, wrap_latex)
    predicted_latex = _as_latex(predicted, wrap_latex)
    gold = parse(reference_latex, extraction_config=_EXTRACTION_CONFIG, parsing_timeout=timeout)
    if predicted_latex == reference_latex:
        # parse is deterministic and math_verify.verify does not modify its arguments.
        target = gold
    else:
        target = parse(
            predicted_latex, extraction_config=_EXTRACTION_CONFIG, parsing_timeout=timeout
        )
    if not gold or not target:
        side = "reference" if not gold else "predicted answer"
        return Verification(
            strings_equal, METHOD_STRING_MATCH, f"math-verify parsed nothing from the {side}"
        )

    if math_verify_verify(gold, target, timeout_seconds=timeout):
        return Verification(True, METHOD_MATH_VERIFY, "equal according to math-verify")
    if strings_equal:
        return Verification(True, METHOD_STRING_MATCH, "math-verify rejected equal strings")
    return Verification(False, METHOD_MATH_VERIFY, "not equal according to math-verify")


def _as_latex(answer: str, wrap_latex: bool) -> str:
    answer = clean_answer(answer)
    if not wrap_latex or "$" in answer.replace("\\$", "") or answer.startswith("\\("):
        return answer
    return f"${answer}$"


def _too_costly(answer: str) -> str:
    """Return why `answer` should skip the symbolic check, or an empty string."""
    if len(answer) > MAX_SYMBOLIC_ANSWER_CHARS:
        return f"answer longer than {MAX_SYMBOLIC_ANSWER_CHARS} characters"
    if _HUGE_POWER.search(answer):
        return "power tower or exponent with 6 or more digits"
    if _LONG_INTEGER.search(answer):
        return "integer with 40 or more digits"
    if _LARGE_FACTORIAL.search(answer):
        return "factorial of a number with 4 or more digits"
    return ""


def _safe_timeout_seconds() -> int | None:
    """Return the math-verify timeout, or None where `signal.alarm` would be unsafe."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if not hasattr(signal, "SIGALRM"):
        return None
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        return None
    return VERIFY_TIMEOUT_SECONDS
