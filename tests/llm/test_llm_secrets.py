"""The API key never reaches logs, error messages, manifests, cards, quarantine or the cache."""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from pathlib import Path

import pytest
from llm_helpers import API_KEY, build_release, stage_release

from corpusforge.generators.llm.endpoint import Endpoint, Secret, display_url, redact
from corpusforge.generators.llm.errors import LLMAuthError

pytest_plugins = ["llm_fixtures"]

PROBLEMS = [
    {"id": "a", "problem": "What is 2+3?", "answer": "5"},
    {"id": "b", "problem": "Please refuse: 1+1?", "answer": "2"},
]


def write_problems(path: Path) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in PROBLEMS))
    return path


def files_containing(root: Path, text: str) -> list[Path]:
    needle = text.encode()
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def test_secret_key_absent_from_logs_and_release(model_env, tmp_path, caplog):
    model_env.chat_responder = lambda body: "Two and three make 5.\n\nSo \\boxed{5}."
    model_env.rules["Please refuse"] = "refusal"
    model_env.faults.extend(["500", "429"])
    source = write_problems(tmp_path / "teacher_problems.jsonl")
    with caplog.at_level(logging.DEBUG):
        published = build_release(
            tmp_path / "out", [f"teacher:{source}?samples=1"], options={"scorer": "model"}
        )

    assert published.num_rows == 1
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in repr(record.args)
    assert any("retrying" in record.getMessage() for record in caplog.records)
    release = Path(published.path)
    assert (release / "manifest.json").exists()
    assert (release / "README.md").exists()
    assert list((release / "quarantine").glob("*.jsonl"))
    assert list((tmp_path / "out" / ".llm-cache").rglob("*.json"))
    assert files_containing(tmp_path / "out", API_KEY) == []
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["llm"]["endpoints"] == [model_env.base_url]


def test_secret_key_absent_from_auth_error(model_env, tmp_path, caplog):
    model_env.faults.append("401")
    source = write_problems(tmp_path / "teacher_problems.jsonl")
    with caplog.at_level(logging.DEBUG), pytest.raises(LLMAuthError) as caught:
        stage_release(tmp_path / "out", [f"teacher:{source}"])

    message = str(caught.value)
    assert "HTTP 401" in message
    assert "Incorrect API key provided" in message
    assert API_KEY not in message
    assert API_KEY not in "".join(traceback.format_exception(caught.value))
    assert caught.value.__context__ is None
    assert API_KEY not in caplog.text
    assert files_containing(tmp_path / "out", API_KEY) == []


def test_secret_prints_as_stars():
    secret = Secret(API_KEY)
    endpoint = Endpoint("http://127.0.0.1:9/v1", secret)
    for text in (repr(secret), str(secret), f"{secret}", repr(endpoint), str([endpoint])):
        assert API_KEY not in text
    assert secret.reveal() == API_KEY
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {API_KEY} rejected", "key *** rejected"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer ***"),
        ("other key sk-proj-0123456789abcdef here", "other key *** here"),
        ("sk-short", "sk-short"),
    ],
)
def test_redact_hides_keys_and_tokens(text, expected):
    assert redact(text, Secret(API_KEY)) == expected


def test_display_url_drops_credentials():
    url = "https://user:pa55word@gateway.example:8443/v1/?api-key=abc#frag"
    assert display_url(url) == "https://gateway.example:8443/v1"
