"""Fixtures of the LLM backend tests: the mock server on 127.0.0.1 and its endpoint.

Test modules load this file with `pytest_plugins = ["llm_fixtures"]`. A
conftest.py in this folder would replace the `conftest` module that other test
folders import helpers from.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llm_helpers import API_KEY
from mock_openai import MockOpenAI

from corpusforge.generators.llm.endpoint import Endpoint, Secret


@pytest.fixture
def mock_server() -> Iterator[MockOpenAI]:
    """Start the mock server on 127.0.0.1; it accepts only API_KEY."""
    with MockOpenAI(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def endpoint(mock_server: MockOpenAI) -> Endpoint:
    return Endpoint(mock_server.base_url, Secret(API_KEY))


@pytest.fixture
def model_env(mock_server: MockOpenAI, monkeypatch: pytest.MonkeyPatch) -> MockOpenAI:
    """Point OPENAI_BASE_URL and OPENAI_API_KEY at the mock server, as on the command line."""
    monkeypatch.setenv("OPENAI_BASE_URL", mock_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    return mock_server
