"""Constants and release builders shared by the LLM backend tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)
from corpusforge.generators.publish import PublishedRelease, publish_release

# A key that is easy to find in logs and files, so tests can prove that it never leaks.
API_KEY = "sk-test-SECRET-7f3a9c2e5b1d4f60"

# Client settings that keep retries and polls fast; a test overrides what it checks.
FAST_SETTINGS: dict[str, Any] = {
    "backend": "openai",
    "model": "mock-model",
    "concurrency": 4,
    "max_attempts": 3,
    "timeout_seconds": 1.0,
    "backoff_seconds": 0.01,
    "max_backoff_seconds": 0.05,
    "breaker_failures": 50,
    "batch_poll_seconds": 0.02,
    "progress_seconds": 0.0,
}


def stage_release(
    root: Path,
    sources: list[str],
    *,
    dataset: str = "stephint",
    release: str = "r1",
    options: dict[str, Any] | None = None,
    llm: dict[str, Any] | None = None,
    order: str = "sequential",
    **params: Any,
) -> Path:
    """Plan and generate every shard of a release; return the staging folder."""
    staging = plan_release(
        BuildParams(
            dataset=dataset,
            release=release,
            output_root=str(root),
            sources=sources,
            options=options or {},
            llm={**FAST_SETTINGS, **(llm or {})},
            **params,
        ),
        RunInfo(run_id="llm-test", started_at="2026-01-01T00:00:00+00:00"),
    )
    indices = list(range(len(load_plan(staging)["shards"])))
    if order == "reverse":
        indices.reverse()
    for index in indices:
        generate_shard(staging, index)
    return staging


def build_release(root: Path, sources: list[str], **kwargs: Any) -> PublishedRelease:
    """Stage, validate and publish a release (StepHint unless `dataset` names another)."""
    from corpusforge.data_contracts import validate_staging

    staging = stage_release(root, sources, **kwargs)
    validate_staging(staging)
    return publish_release(staging)


def read_quarantine(folder: str | Path) -> list[dict[str, Any]]:
    """Return the quarantine entries of a staging or release folder, in file order."""
    entries = []
    for file in sorted((Path(folder) / "quarantine").glob("*.jsonl")):
        entries.extend(json.loads(line) for line in file.read_text().splitlines() if line)
    return entries


def read_rows(folder: str | Path, config: str) -> list[dict[str, Any]]:
    """Return every row of one config of a published release, images left out."""
    import pyarrow.parquet as pq

    rows = []
    for file in sorted((Path(folder) / "data" / config).glob("*.parquet")):
        table = pq.read_table(file)
        drop = [name for name in ("image", "images") if name in table.column_names]
        rows.extend(table.drop_columns(drop).to_pylist())
    return rows


def user_payload(body: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON object that a dataset's model request sends as its user message."""
    return json.loads(body["messages"][-1]["content"])


class TextWriter:
    """Mock replies of MLLMU-Med's model text backend: each text with a marker in front.

    `faults` maps a substring of a source text to `drop_value` (the reply leaves out
    the first value it had to keep). `written` records every text returned.
    """

    PARAPHRASE_PREFIX = "Put differently: "
    PROFILE_PREFIX = "Chart summary. "

    def __init__(self) -> None:
        self.faults: dict[str, str] = {}
        self.written: set[str] = set()

    def __call__(self, body: dict[str, Any]) -> str:
        payload = user_payload(body)
        source = payload["text"]
        prefix = self.PARAPHRASE_PREFIX if payload["task"] == "paraphrase" else self.PROFILE_PREFIX
        text = prefix + source
        for marker, fault in self.faults.items():
            if marker in source and fault == "drop_value" and payload["keep_verbatim"]:
                text = text.replace(payload["keep_verbatim"][0], "the patient")
        self.written.add(text)
        return json.dumps({"text": text})


class QuestionWriter:
    """Mock replies of Med-MIM's model composer and verifier.

    The compose pass puts a marker in front of the draft question. `faults` maps
    a draft question to `drop_answer` (the reply returns another answer),
    `wrong_position` (the question names another image), `same_question` (the
    question composed for the first such draft) or `wrong_verdict` (the verifier
    answers otherwise).
    `answers` maps each composed question to its answer.
    """

    PREFIX = "Looking at this set of studies: "

    def __init__(self) -> None:
        self.faults: dict[str, str] = {}
        self.answers: dict[str, str] = {}
        self.same_question = ""

    def __call__(self, body: dict[str, Any]) -> str:
        payload = user_payload(body)
        if payload["task"] == "compose":
            draft = payload["draft_question"]
            fault = self.faults.get(draft)
            question = self.PREFIX + draft
            answer = payload["answer"]
            if fault == "same_question":
                self.same_question = self.same_question or question
                question = self.same_question
            if fault == "wrong_position":
                question = re.sub(
                    r"\b(first|second|third|fourth) image",
                    lambda match: ("second" if match[1] == "first" else "first") + " image",
                    question,
                    count=1,
                )
            self.answers[question] = answer
            if fault == "drop_answer":
                answer = "none of these"
            reply = {"question": question, "options": payload["options"], "answer": answer}
            return json.dumps(reply)
        answer = self.answers[payload["question"]]
        draft = payload["question"].removeprefix(self.PREFIX)
        if self.faults.get(draft) == "wrong_verdict":
            answer = "something else"
        return json.dumps({"self_contained": True, "answer": answer})
