"""Adaptive partitioning of a reasoning chain into steps, after StepHint (arXiv 2507.02841).

StepHint scores each candidate position t with p_end(t), the probability that the
reasoning could end right after the prefix up to t, and places a step boundary
where that probability drops: p_end(t) > p_end(t_next). Here the candidates are
sentence and line ends (`candidate_boundaries`), t_next is the next candidate, and
p_end comes from a `BoundaryScorer`. `HeuristicScorer` is a deterministic offline
stand-in for the language-model probability that StepHint uses.

Every function here is deterministic: the same chain and scorer give the same
steps on every machine.
"""

from __future__ import annotations

import bisect
import re
from typing import Protocol

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.stephint.answers import find_closing_brace
from corpusforge.generators.stephint.chain import THINK_CLOSE, THINK_OPEN

# Minimum number of characters between two step boundaries, and between the start
# of the chain and the first boundary. GSM8K lines are 20 to 80 characters, so a
# lower minimum would allow steps of a few words.
DEFAULT_MIN_STEP_CHARS = 30

# Maximum number of steps per chain, so at most DEFAULT_MAX_STEPS - 1 hint levels.
DEFAULT_MAX_STEPS = 10

# Words after which a period does not end a sentence, compared in lower case.
ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "cf", "vs", "approx", "resp", "mr", "mrs", "ms", "dr", "prof", "fig", "eq"}
)
ABBREVIATIONS |= {"st", "jr", "sr", "a.m", "p.m", "eqs", "figs", "ch", "sec", "thm", "def"}

_WHITESPACE_RUN = re.compile(r"\s+")
_CLOSING_PUNCTUATION = "\"')]”’*$"
_LIST_MARKER = re.compile(r"\s*(?:\d+|[A-Za-z]|[ivxIVX]+)\.$")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+|\\[\[(]")
_MATH_OPENER = re.compile(
    r"\\\$|\$\$|\$|\\\[|\\\(|\\begin\{([^{}\n]*)\}|\\(?:boxed|fbox)\s*\{|\[asy\]|```"
)


class BoundaryScorer(Protocol):
    """A source of p_end(t), the probability that reasoning may end at candidate t."""

    name: str

    def score(self, chain: str, candidates: list[int]) -> list[float]:
        """Return p_end in [0, 1] for each candidate offset, in the same order."""
        ...


def candidate_boundaries(chain: str) -> list[int]:
    """Return the offsets where a step may start, in increasing order.

    A candidate follows a sentence end (`.`, `?` or `!`, optionally followed by
    closing quotes, brackets, `**` or the `$` that closes inline math, then
    whitespace) or a line end. The offset points
    after the whitespace, so the whitespace belongs to the previous step and the
    steps concatenate to the chain.

    These positions are not candidates:
    - inside math (`$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]`,
      `\\begin{...}...\\end{...}`), `\\boxed{...}`, `\\fbox{...}`, `[asy]...[/asy]`
      or a code fence;
    - after a period that ends an abbreviation such as "e.g." or a list number
      such as "1.";
    - after punctuation followed by a lower-case letter;
    - the line break after `<think>` and the one before `</think>`.

    `$` is read as a math delimiter only when the chain contains a LaTeX command,
    because plain-text chains such as GSM8K use `$` as the dollar sign. Inline
    `$...$` never spans a blank line.
    """
    protected = _protected_spans(chain)
    starts = [start for start, _ in protected]
    candidates: list[int] = []
    length = len(chain)

    for run in _WHITESPACE_RUN.finditer(chain):
        run_start, run_end = run.start(), run.end()
        if run_start == 0 or run_end >= length:
            continue
        if _inside(protected, starts, run_start):
            continue
        if chain.startswith(THINK_CLOSE, run_end) or chain.endswith(THINK_OPEN, 0, run_start):
            continue
        if "\n" in run.group() or _is_sentence_end(chain, run_start, run_end):
            candidates.append(run_end)
    return candidates


def _inside(protected: list[tuple[int, int]], starts: list[int], index: int) -> bool:
    position = bisect.bisect_right(starts, index) - 1
    return position >= 0 and index < protected[position][1]


def _is_sentence_end(chain: str, run_start: int, run_end: int) -> bool:
    end = run_start
    while end > 0 and chain[end - 1] in _CLOSING_PUNCTUATION:
        end -= 1
    if end == 0 or chain[end - 1] not in ".?!":
        return False
    if chain[run_end].islower():
        return False
    if chain[end - 1] != ".":
        return True

    line_start = chain.rfind("\n", 0, end) + 1
    if _LIST_MARKER.match(chain, line_start, end):
        return False
    word_start = end - 1
    while word_start > line_start and not chain[word_start - 1].isspace():
        word_start -= 1
    word = chain[word_start : end - 1].lower().lstrip("(\"'")
    return word not in ABBREVIATIONS


def _protected_spans(chain: str) -> list[tuple[int, int]]:
    """Return sorted, disjoint (start, end) ranges of math and boxes, where no step may end."""
    # NOTE: a chain that writes math only as `$x = 1$`, with no LaTeX command anywhere,
    # is read as plain text, so a sentence end inside its `$...$` can become a candidate.
    dollars_are_math = _LATEX_COMMAND.search(chain) is not None
    spans: list[tuple[int, int]] = []
    # Closers already known to be missing after some position, so a chain with many
    # unclosed openers is still scanned in linear time.
    missing_closers: set[str] = set()
    position = 0

    while True:
        opener = _MATH_OPENER.search(chain, position)
        if opener is None:
            return spans
        token = opener.group()
        end = None

        if token == "\\$" or (token.startswith("$") and not dollars_are_math):
            position = opener.end()
            continue
        if token.startswith("\\boxed") or token.startswith("\\fbox"):
            close = find_closing_brace(chain, opener.end() - 1)
            end = None if close is None else close + 1
        elif token == "$":
            end = _find_inline_dollar_end(chain, opener.end())
        else:
            closer = _closer_of(token, opener.group(1))
            if closer not in missing_closers:
                close = chain.find(closer, opener.end())
                if close < 0:
                    missing_closers.add(closer)
                else:
                    end = close + len(closer)

        if end is None:
            position = opener.end()
        else:
            spans.append((opener.start(), end))
            position = end


def _closer_of(token: str, environment: str | None) -> str:
    if token.startswith("\\begin"):
        return f"\\end{{{environment}}}"
    return {"$$": "$$", "\\[": "\\]", "\\(": "\\)", "[asy]": "[/asy]", "```": "```"}[token]


def _find_inline_dollar_end(chain: str, start: int) -> int | None:
    index = start
    while True:
        close = chain.find("$", index)
        if close < 0:
            return None
        if chain[close - 1] == "\\":
            index = close + 1
            continue
        if "\n\n" in chain[start:close]:
            return None
        return close + 1


class HeuristicScorer:
    """Deterministic p_end from the text of the step that would end at each candidate.

    The segment before candidate t is the text since the previous candidate. The
    score starts at 0.30 and is changed by these rules, then clipped to [0, 1]:

    - +0.25 after a blank line (paragraph end), +0.15 after a single line break;
    - +0.35 right after `</think>`, the end of the thinking part;
    - +0.20 when the segment states a result: `=` followed by a number or a
      closed math expression near its end, "is/are/equals <number>" at its end,
      or a `\\boxed{...}` anywhere in it;
    - +0.10 when it starts with a conclusion word ("so", "therefore", "thus",
      "hence", "in total", "this gives", "the answer");
    - -0.10 when it starts with a doubt ("wait", "hmm", "but", "alternatively"),
      because the reasoning around it usually continues;
    - -0.25 when it ends in the middle of a computation or sentence (`:`, `,`, `;`,
      an operator, `\\\\`, an opening bracket);
    - -0.10 when it is shorter than 15 characters.

    Scores depend only on the text before each candidate, as a language model's
    p_end would.
    """

    name = "heuristic-v1"

    def score(self, chain: str, candidates: list[int]) -> list[float]:
        scores = []
        previous = 0
        for candidate in candidates:
            scores.append(_score_segment(chain[previous:candidate]))
            previous = candidate
        return scores


_RESULT_AT_END = re.compile(
    r"(?:=|\\approx|\\equiv)\s*\\?\$?\s*-?(?:\d[\d,]*(?:\.\d+)?|\\frac\{[^{}]*\}\{[^{}]*\}|\\sqrt)"
    r"[^=\n]{0,60}$"
    r"|\b(?:is|are|equals|gives|get|got)\s+\\?\$?-?\d[\d,]*(?:\.\d+)?[^\d\n]{0,30}$",
    re.IGNORECASE,
)
_CLOSED_DISPLAY_MATH_WITH_RESULT = re.compile(r"=[^=]{1,80}(?:\$\$|\\\])\s*[.,]?$")
_CONCLUSION_START = re.compile(
    r"^(?:\*\*)?(?:so|therefore|thus|hence|in total|altogether|this gives|the answer|finally)\b",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_DOUBT_START = re.compile(r"^(?:wait|hmm|but|alternatively|actually)\b", re.IGNORECASE)
_UNFINISHED_END = (":", ",", ";", "=", "+", "-", "*", "/", "\\\\", "(", "[", "{")


def _score_segment(segment: str) -> float:
    text = segment.rstrip()
    trailing = segment[len(text) :]
    body = text.lstrip()
    score = 0.30

    newlines = trailing.count("\n")
    if newlines >= 2:
        score += 0.25
    elif newlines == 1:
        score += 0.15
    if text.endswith(THINK_CLOSE):
        score += 0.35

    tail = text[-200:]
    if (
        _RESULT_AT_END.search(tail)
        or _CLOSED_DISPLAY_MATH_WITH_RESULT.search(tail)
        or _BOXED.search(text)
    ):
        score += 0.20
    if _CONCLUSION_START.match(body):
        score += 0.10
    if _DOUBT_START.match(body):
        score -= 0.10
    if text.endswith(_UNFINISHED_END):
        score -= 0.25
    if len(body) < 15:
        score -= 0.10
    return min(1.0, max(0.0, round(score, 6)))


def partition(
    chain: str,
    scorer: BoundaryScorer,
    min_chars: int = DEFAULT_MIN_STEP_CHARS,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> list[tuple[int, int]]:
    """Split `chain` into contiguous (start, end) steps that cover it exactly.

    A candidate t from `candidate_boundaries` is eligible when p_end(t) > p_end(t_next),
    with t_next the next candidate whose score differs from p_end(t), and p_end = 0
    at the end of the chain. A heuristic scorer often gives neighbours equal
    scores, which a language model practically never does. Skipping equal scores
    treats such a run of ties like one position, so every member of the run is
    eligible when the run is followed by a drop.

    Boundaries are then taken greedily, highest p_end first, and a tie goes to the
    boundary that splits its current step most evenly, then to the earlier offset.
    A boundary is skipped when it lies closer than `min_chars` to the chain start
    or to a boundary already taken, and selection stops at `max_steps` steps. The
    last step may be shorter than `min_chars`, because it often holds only the
    final answer. An empty chain has no steps.
    """
    if min_chars < 1:
        raise ConfigError(f"min_chars must be at least 1, got {min_chars}")
    if max_steps < 1:
        raise ConfigError(f"max_steps must be at least 1, got {max_steps}")
    if not chain:
        return []

    candidates = candidate_boundaries(chain)
    scores = scorer.score(chain, candidates)
    if len(scores) != len(candidates):
        raise ValueError(
            f"scorer {scorer.name!r} returned {len(scores)} scores for {len(candidates)} candidates"
        )
    for score in scores:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"scorer {scorer.name!r} returned p_end {score!r} outside [0, 1]")

    eligible = []
    # Walk backwards, so the next score that differs from the current one is already known.
    next_different = 0.0
    for index in range(len(candidates) - 1, -1, -1):
        score = scores[index]
        if index + 1 < len(scores) and scores[index + 1] != score:
            next_different = scores[index + 1]
        if score > next_different:
            eligible.append((candidates[index], score))
    eligible.reverse()

    boundaries = _select_boundaries(len(chain), eligible, min_chars, max_steps - 1)
    edges = [0, *boundaries, len(chain)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _select_boundaries(
    length: int, eligible: list[tuple[int, float]], min_chars: int, max_boundaries: int
) -> list[int]:
    selected: list[int] = []
    remaining = [(offset, score) for offset, score in eligible if offset >= min_chars]

    while remaining and len(selected) < max_boundaries:
        best_index = 0
        best_key = None
        for index, (offset, score) in enumerate(remaining):
            position = bisect.bisect_left(selected, offset)
            left = selected[position - 1] if position > 0 else 0
            right = selected[position] if position < len(selected) else length
            balance = min(offset - left, right - offset)
            key = (score, balance, -offset)
            if best_key is None or key > best_key:
                best_index, best_key = index, key

        chosen = remaining[best_index][0]
        bisect.insort(selected, chosen)
        remaining = [
            (offset, score) for offset, score in remaining if abs(offset - chosen) >= min_chars
        ]
    return selected
