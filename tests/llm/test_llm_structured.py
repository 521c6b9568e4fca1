"""Structured output: the request's JSON schema, and every check a chat reply must pass."""

from __future__ import annotations

import pydantic
import pytest
from llm_helpers import FAST_SETTINGS

from corpusforge.generators.llm import errors
from corpusforge.generators.llm.client import LLMClient, LLMReply
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.structured import (
    ChatText,
    chat_request,
    chat_structured,
    chat_text,
    strict_json_schema,
)

pytest_plugins = ["llm_fixtures"]


class Paraphrase(pydantic.BaseModel):
    question: str
    difficulty: int
    tags: list[str] = []


class Nested(pydantic.BaseModel):
    inner: Paraphrase | None = None
    default: str = "x"


def ask(endpoint, count: int = 1) -> list[LLMReply]:
    settings = LLMSettings.from_json(FAST_SETTINGS)
    client = LLMClient.open(settings, label="structured test", endpoint=endpoint)
    requests = [
        chat_request(
            "mock-model",
            [{"role": "user", "content": f"paraphrase {i}"}],
            schema=Paraphrase,
            max_tokens=64,
        )
        for i in range(count)
    ]
    return client.run(requests)


def test_structured_request_has_strict_schema(endpoint, mock_server):
    mock_server.chat_responder = lambda body: '{"question": "Why?", "difficulty": 2, "tags": []}'
    [reply] = ask(endpoint)
    [body] = mock_server.model_requests()
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == "Paraphrase"
    schema = response_format["json_schema"]["schema"]
    assert schema["required"] == ["question", "difficulty", "tags"]
    assert schema["additionalProperties"] is False
    assert body["max_completion_tokens"] == 64
    parsed = chat_structured(reply, Paraphrase)
    assert parsed == Paraphrase(question="Why?", difficulty=2, tags=[])


def test_structured_schema_tightens_nested_models():
    schema = strict_json_schema(Nested)
    assert schema["required"] == ["inner", "default"]
    assert "default" not in schema["properties"]["default"]
    inner = schema["$defs"]["Paraphrase"]
    assert inner["additionalProperties"] is False
    assert inner["required"] == ["question", "difficulty", "tags"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"question": "Why?"', errors.INVALID_JSON),
        ("not json at all", errors.INVALID_JSON),
        ('{"question": "Why?", "difficulty": "2", "tags": []}', errors.SCHEMA_MISMATCH),
        ('{"question": "Why?"}', errors.SCHEMA_MISMATCH),
        ('["Why?", 2]', errors.SCHEMA_MISMATCH),
    ],
)
def test_structured_rejects_invalid_reply(endpoint, mock_server, content, reason):
    mock_server.chat_responder = lambda body: content
    [reply] = ask(endpoint)
    result = chat_structured(reply, Paraphrase)
    assert isinstance(result, errors.LLMFailure)
    assert result.reason == reason


@pytest.mark.parametrize(
    ("fault", "reason", "words"),
    [
        ("truncated", errors.TRUNCATED, "finish_reason=length"),
        ("refusal", errors.REFUSAL, "can't help"),
        ("content_filter", errors.CONTENT_FILTER, "content filter"),
        ("invalid_json", errors.INVALID_JSON, "not valid JSON"),
        ("surrogate", errors.INVALID_UNICODE, "lone surrogate"),
    ],
)
def test_structured_fault_gives_typed_failure(endpoint, mock_server, fault, reason, words):
    mock_server.chat_responder = lambda body: '{"question": "Why?", "difficulty": 2, "tags": []}'
    mock_server.faults.append(fault)
    [reply] = ask(endpoint)
    result = chat_structured(reply, Paraphrase)
    assert isinstance(result, errors.LLMFailure)
    assert result.reason == reason
    assert words in result.detail
    # A cut or refused reply still arrived, so it is cached and counted as a reply.
    assert reply.failure is None


def test_structured_keeps_unicode_text(endpoint, mock_server):
    mock_server.chat_responder = lambda body: (
        '{"question": "Pourquoi ∑ 𝑥² ? 数学", "difficulty": 3, "tags": ["é"]}'
    )
    [reply] = ask(endpoint)
    assert chat_structured(reply, Paraphrase).question == "Pourquoi ∑ 𝑥² ? 数学"


def test_chat_text_reads_reasoning_content(endpoint, mock_server):
    mock_server.chat_responder = lambda body: {
        "content": "So \\boxed{4}.",
        "reasoning_content": "2 plus 2 is 4.",
    }
    [reply] = ask(endpoint)
    assert chat_text(reply) == ChatText("So \\boxed{4}.", "2 plus 2 is 4.")


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ({}, errors.INVALID_RESPONSE),
        ({"choices": []}, errors.INVALID_RESPONSE),
        ({"choices": [{"finish_reason": "stop"}]}, errors.INVALID_RESPONSE),
        (
            {"choices": [{"finish_reason": "tool_calls", "message": {"content": "x"}}]},
            errors.INVALID_RESPONSE,
        ),
        ({"choices": [{"finish_reason": "stop", "message": {"content": " "}}]}, errors.EMPTY_REPLY),
        ({"choices": [{"finish_reason": "stop", "message": {}}]}, errors.EMPTY_REPLY),
    ],
)
def test_chat_text_rejects_malformed_reply(response, reason):
    result = chat_text(LLMReply(response))
    assert isinstance(result, errors.LLMFailure)
    assert result.reason == reason


def test_chat_text_passes_request_failure_through():
    failure = errors.LLMFailure(errors.RETRIES_EXHAUSTED, "HTTP 500")
    assert chat_text(LLMReply(None, failure)) is failure
