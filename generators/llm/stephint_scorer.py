"""The model boundary scorer of StepHint: p_end(t) from a language model's prompt logprobs.

For candidate boundary t of a chain, the scorer sends the prompt
`template(problem, chain[:t]) + end_token` to /v1/completions with `echo=true`
and `logprobs`, and reads p_end(t) = exp(sum of the logprobs of the tokens that
cover `end_token`). The logprob comes from the echoed prompt, not from the top-k
list of next tokens, because that list need not contain the end token. vLLM
returns prompt logprobs for such requests (its serving_completion.py adds them
when `echo` is set). Some SGLang versions log that echo is not compatible with
logprobs and return none; the scorer then quarantines every record with
`llm_invalid_response`.

The end token defaults to `</think>`, the end of thinking in DeepSeek-R1 and
Qwen3 chat templates. Each candidate costs one request whose prompt repeats the
prefix, so a server with prefix caching (vLLM's default) answers much faster.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from corpusforge.generators.llm.backends import COMPLETIONS
from corpusforge.generators.llm.client import LLMClient, LLMReply, LLMRequest
from corpusforge.generators.llm.errors import INVALID_RESPONSE, LLMFailure
from corpusforge.generators.stephint.partition import HeuristicScorer, candidate_boundaries

DEFAULT_END_TOKEN = "</think>"
# `{problem}` and `{prefix}` are replaced literally, so braces elsewhere need no escaping.
DEFAULT_SCORER_PROMPT = "{problem}\n\n{prefix}"

_PLACEHOLDER = re.compile(r"\{(problem|prefix)\}")
_MISSING_LOGPROBS = (
    "the reply has no prompt logprobs; the server must answer /v1/completions with "
    "echo=true and logprobs, as vLLM does"
)


class ScoringFailed(Exception):
    """No p_end could be read for a chain, so its record is quarantined with `failure`."""

    def __init__(self, failure: LLMFailure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def render_prompt(template: str, problem: str, prefix: str) -> str:
    """Return `template` with `{problem}` and `{prefix}` replaced in one pass."""
    values = {"problem": problem, "prefix": prefix}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def end_token_probability(reply: LLMReply, prompt: str, end_token: str) -> float | LLMFailure:
    """Return exp(sum of logprobs) of the prompt tokens covering the final `end_token`.

    Token i spans from its `text_offset` to the next token's offset. Every prompt
    token that ends after the start of `end_token` counts.
    NOTE: when the tokenizer merges the end token with the text before it (such
    as "\\n</think>" as one token), that whole token counts, so p_end also
    includes the probability of the merged text.
    """
    if reply.failure is not None:
        return reply.failure
    choices = (reply.response or {}).get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return LLMFailure(INVALID_RESPONSE, "the reply has no choices")
    choice = choices[0]
    logprobs = choice.get("logprobs") or {}
    tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    offsets = logprobs.get("text_offset") if isinstance(logprobs, dict) else None
    if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(offsets, list)):
        return LLMFailure(INVALID_RESPONSE, _MISSING_LOGPROBS)
    if not len(tokens) == len(values) == len(offsets) or not tokens:
        return LLMFailure(INVALID_RESPONSE, _MISSING_LOGPROBS)
    text = choice.get("text")
    if not isinstance(text, str) or not text.startswith(prompt):
        return LLMFailure(
            INVALID_RESPONSE,
            "the reply does not echo the prompt; send echo=true to a server that supports it",
        )

    start_of_end = len(prompt) - len(end_token)
    total = 0.0
    covered = False
    for index, offset in enumerate(offsets):
        if not isinstance(offset, int) or offset >= len(prompt):
            break
        token_end = offsets[index + 1] if index + 1 < len(offsets) else len(text)
        if not isinstance(token_end, int) or token_end <= start_of_end:
            continue
        value = values[index]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return LLMFailure(
                INVALID_RESPONSE,
                f"prompt token {index} ({tokens[index]!r}) has no logprob; the end token must "
                "not be the first token of the prompt",
            )
        total += float(value)
        covered = True
    if not covered:
        return LLMFailure(INVALID_RESPONSE, "no prompt token covers the end token in the reply")
    return min(1.0, max(0.0, math.exp(total)))


def offline_completion_responder(end_token: str):
    """Return an offline /completions responder whose p_end is the heuristic scorer's.

    The responder scores the text between the last candidate boundary of the
    prompt and the end token with `HeuristicScorer`, and returns it as the end
    token's logprob in the shape of an echoed /v1/completions reply. Because it
    receives the whole prompt, a candidate right after the problem text can score a
    little differently from `scorer=heuristic`.
    """
    heuristic = HeuristicScorer()

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        prompt = str(body["prompt"])
        prefix = prompt[: len(prompt) - len(end_token)]
        boundaries = candidate_boundaries(prefix)
        last = boundaries[-1] if boundaries else 0
        score = heuristic.score(prefix[last:], [len(prefix) - last])[0] if prefix else 0.0
        logprob = math.log(score) if score > 0 else -math.inf
        return {
            "object": "text_completion",
            "model": body.get("model", "offline"),
            "choices": [
                {
                    "index": 0,
                    "text": prompt,
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": [prefix, end_token],
                        "token_logprobs": [None, logprob],
                        "text_offset": [0, len(prefix)],
                        "top_logprobs": None,
                    },
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    return respond


class ModelBoundaryScorer:
    """p_end(t) of every candidate, fetched from a model for many chains at once.

    Call `prefetch` with the (problem, chain) pairs of a block of records, so
    that their requests run concurrently, then partition each chain with
    `for_problem(problem)`, which implements the partitioner's BoundaryScorer
    protocol and reads the prefetched scores.
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        end_token: str = DEFAULT_END_TOKEN,
        prompt_template: str = DEFAULT_SCORER_PROMPT,
    ) -> None:
        if not end_token:
            raise ValueError("end_token must not be empty")
        self.client = client
        self.model = model
        self.end_token = end_token
        self.prompt_template = prompt_template
        self.name = f"model-logprob:{model}"
        self._scores: dict[tuple[str, str], dict[int, float]] = {}

    def request(self, problem: str, chain: str, offset: int, label: str = "") -> LLMRequest:
        prompt = render_prompt(self.prompt_template, problem, chain[:offset]) + self.end_token
        body = {
            "model": self.model,
            "prompt": prompt,
            # One generated token: servers differ on whether echo allows max_tokens=0.
            "max_tokens": 1,
            "echo": True,
            "logprobs": 1,
            "temperature": 0.0,
        }
        return LLMRequest(COMPLETIONS, body, 0, label)

    def prefetch(
        self, items: Sequence[tuple[str, str]], labels: Sequence[str] | None = None
    ) -> list[LLMFailure | None]:
        """Fetch p_end for every candidate of each (problem, chain) and return the failures."""
        requests: list[LLMRequest] = []
        owners: list[tuple[int, int]] = []
        for number, (problem, chain) in enumerate(items):
            known = self._scores.setdefault((problem, chain), {})
            label = labels[number] if labels else ""
            for offset in candidate_boundaries(chain):
                if offset not in known:
                    requests.append(self.request(problem, chain, offset, label))
                    owners.append((number, offset))

        failures: list[LLMFailure | None] = [None] * len(items)
        replies = self.client.run(requests)
        for (number, offset), request, reply in zip(owners, requests, replies, strict=True):
            result = end_token_probability(reply, request.body["prompt"], self.end_token)
            if isinstance(result, LLMFailure):
                if failures[number] is None:
                    failures[number] = result
                continue
            self._scores[items[number]][offset] = result
        for number, failure in enumerate(failures):
            if failure is not None:
                self._scores.pop(items[number], None)
        return failures

    def clear(self) -> None:
        """Drop every stored score, so that memory holds one block of chains at a time."""
        self._scores.clear()

    def for_problem(self, problem: str) -> _ProblemScorer:
        return _ProblemScorer(self, problem)

    def score(self, chain: str, candidates: list[int]) -> list[float]:
        """Return p_end for `candidates` of a chain with no problem text."""
        return self.for_problem("").score(chain, candidates)

    def scores_for(self, problem: str, chain: str, candidates: list[int]) -> list[float]:
        known = self._scores.get((problem, chain), {})
        if any(offset not in known for offset in candidates):
            missing = [offset for offset in candidates if offset not in known]
            requests = [self.request(problem, chain, offset) for offset in missing]
            replies = self.client.run(requests)
            known = self._scores.setdefault((problem, chain), {})
            for offset, request, reply in zip(missing, requests, replies, strict=True):
                result = end_token_probability(reply, request.body["prompt"], self.end_token)
                if isinstance(result, LLMFailure):
                    raise ScoringFailed(result)
                known[offset] = result
        return [known[offset] for offset in candidates]


class _ProblemScorer:
    """The BoundaryScorer of one problem's chains, reading `ModelBoundaryScorer`'s scores."""

    def __init__(self, owner: ModelBoundaryScorer, problem: str) -> None:
        self.owner = owner
        self.problem = problem
        self.name = owner.name

    def score(self, chain: str, candidates: list[int]) -> list[float]:
        return self.owner.scores_for(self.problem, chain, candidates)
