"""Chat requests and the checks every chat reply passes before a generator may use it.

`chat_text` accepts a reply only when it finished normally (`finish_reason`
"stop"), carries no refusal, and has non-empty text that UTF-8 can encode. A
reply cut at the token limit (`finish_reason` "length") is a failure, never a
record. `chat_structured` also requires the text to be JSON that validates
against a pydantic model in strict mode, which coerces nothing: "5" is not an
integer. Nothing is repaired: a reply that fails a check becomes an
`LLMFailure` whose reason names the check.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from corpusforge.generators.llm.backends import CHAT_COMPLETIONS
from corpusforge.generators.llm.client import LLMReply, LLMRequest
from corpusforge.generators.llm.errors import (
    CONTENT_FILTER,
    EMPTY_REPLY,
    INVALID_JSON,
    INVALID_RESPONSE,
    INVALID_UNICODE,
    REFUSAL,
    SCHEMA_MISMATCH,
    TRUNCATED,
    LLMFailure,
)

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

# Characters of a refusal or invalid reply quoted in a failure's detail.
MAX_QUOTED_CHARS = 300


@dataclass(frozen=True)
class ChatText:
    """The text of an accepted chat reply.

    `reasoning` is the separate reasoning text that some OpenAI-compatible
    servers return in `message.reasoning_content` (as the DeepSeek API does) or
    `message.reasoning`, or "" when there is none.
    """

    content: str
    reasoning: str = ""


def strict_json_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """Return the JSON schema of `model` in the form that strict structured output requires.

    Every object lists all its properties as required and forbids others, and no
    property has a default, as OpenAI's strict mode demands.
    """
    schema = copy.deepcopy(model.model_json_schema())
    _tighten(schema)
    return schema


def _tighten(schema: Any) -> None:
    """Make every object schema inside `schema` strict, in place."""
    if not isinstance(schema, dict):
        return
    schema.pop("default", None)
    if isinstance(schema.get("properties"), dict):
        properties = schema["properties"]
        schema["required"] = list(properties)
        schema["additionalProperties"] = False
        for child in properties.values():
            _tighten(child)
    for key in ("items", "not", "additionalProperties"):
        child = schema.get(key)
        for item in child if isinstance(child, list) else [child]:
            _tighten(item)
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for child in schema.get(key) or []:
            _tighten(child)
    for child in (schema.get("$defs") or {}).values():
        _tighten(child)


def chat_request(
    model: str,
    messages: Sequence[dict[str, Any]],
    *,
    sample: int = 0,
    label: str = "",
    schema: type[pydantic.BaseModel] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> LLMRequest:
    """Return a /chat/completions request, asking for JSON that follows `schema` when given."""
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_completion_tokens"] = max_tokens
    if seed is not None:
        body["seed"] = seed
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": schema.__name__,
                "schema": strict_json_schema(schema),
                "strict": True,
            },
        }
    return LLMRequest(CHAT_COMPLETIONS, body, sample, label)


def chat_completion_body(model: str, content: str) -> dict[str, Any]:
    """Return a chat completion reply carrying `content`, as offline responders send it."""
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def chat_text(reply: LLMReply) -> ChatText | LLMFailure:
    """Return the text of a chat reply, or the failure of the first check it fails."""
    if reply.failure is not None:
        return reply.failure
    response = reply.response or {}
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return LLMFailure(INVALID_RESPONSE, "the reply has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        return LLMFailure(INVALID_RESPONSE, "the reply's first choice has no message")

    finish_reason = choice.get("finish_reason")
    if finish_reason == "length":
        usage = response.get("usage") or {}
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        detail = "the reply was cut at the token limit (finish_reason=length)"
        if tokens is not None:
            detail += f" after {tokens} tokens"
        return LLMFailure(TRUNCATED, detail + "; raise max_tokens or shorten the task")
    if finish_reason == "content_filter":
        return LLMFailure(CONTENT_FILTER, "the endpoint's content filter stopped the reply")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        return LLMFailure(REFUSAL, f"the model refused: {_quote(refusal)}")
    if finish_reason != "stop":
        return LLMFailure(
            INVALID_RESPONSE, f"unexpected finish_reason {finish_reason!r}; expected 'stop'"
        )

    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return LLMFailure(INVALID_RESPONSE, f"message content is a {type(content).__name__}")
    if not content or not content.strip():
        return LLMFailure(EMPTY_REPLY, "the reply has no text")
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    if not isinstance(reasoning, str):
        reasoning = ""
    for name, text in (("content", content), ("reasoning", reasoning)):
        position = _lone_surrogate_at(text)
        if position is not None:
            return LLMFailure(
                INVALID_UNICODE,
                f"the reply's {name} has a lone surrogate at character {position}, "
                "which UTF-8 cannot encode",
            )
    return ChatText(content, reasoning)


def chat_structured(reply: LLMReply, schema: type[ModelT]) -> ModelT | LLMFailure:
    """Return the reply parsed into `schema`, or the failure: invalid JSON or a schema mismatch."""
    text = chat_text(reply)
    if isinstance(text, LLMFailure):
        return text
    try:
        return schema.model_validate_json(text.content, strict=True)
    except pydantic.ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        if any(problem["type"] == "json_invalid" for problem in problems):
            return LLMFailure(INVALID_JSON, f"the reply is not valid JSON: {_quote(text.content)}")
        described = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
            for problem in problems[:5]
        )
        return LLMFailure(
            SCHEMA_MISMATCH, f"the reply does not match schema {schema.__name__}: {described}"
        )


def _lone_surrogate_at(text: str) -> int | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def _quote(text: str) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_QUOTED_CHARS:
        text = text[:MAX_QUOTED_CHARS] + "..."
    return repr(text)
