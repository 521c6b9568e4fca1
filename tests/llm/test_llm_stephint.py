"""StepHint with the model backend: model boundary scorer and teacher chains, end to end."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from llm_helpers import build_release, stage_release
from mock_openai import END_TOKEN, default_end_logprob

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm.client import LLMReply
from corpusforge.generators.llm.errors import INVALID_RESPONSE
from corpusforge.generators.llm.stephint_scorer import (
    DEFAULT_SCORER_PROMPT,
    end_token_probability,
    render_prompt,
)
from corpusforge.generators.stephint.chain import normalize_chain
from corpusforge.generators.stephint.partition import partition

pytest_plugins = ["llm_fixtures"]

GSM8K_RECORDS = [
    {
        "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
        "answer": "Tom starts with 3 apples.\nHe buys 4 more, so 3 + 4 = <<3+4=7>>7.\n"
        "He now has 7 apples in total.\n#### 7",
    },
    {
        "question": "A box holds 6 eggs. How many eggs are in 5 boxes?",
        "answer": "Each box holds 6 eggs.\nFive boxes hold 5 * 6 = <<5*6=30>>30 eggs.\n"
        "That is the number of eggs in all the boxes.\n#### 30",
    },
    {
        "question": "Ana reads 10 pages a day. How many pages in 3 days?",
        "answer": "Ana reads 10 pages every day of the week.\nIn 3 days she reads 3 * 10 = 30.\n"
        "So the total over three days is 30 pages.\n#### 30",
    },
]

TEACHER_RECORDS = [
    {"id": "p1", "problem": "What is 2+3?", "answer": "5"},
    {"id": "p2", "problem": "What is 6*7?", "answer": "42"},
    {"id": "p3", "problem": "What is 10-4?", "answer": "6"},
    {"id": "p4", "problem": "Please refuse this one: 1+1?", "answer": "2"},
    {"id": "p5", "problem": "What is 9+9?", "answer": ""},
    {"id": "p1", "problem": "Duplicate id: 2+3?", "answer": "5"},
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def teacher_responder():
    """Return chains that solve p1 (with separate reasoning), p2 on the second sample, p3 never."""
    calls: dict[str, int] = {}

    def respond(body):
        problem = body["messages"][1]["content"]
        calls[problem] = calls.get(problem, 0) + 1
        if "2+3" in problem:
            return {
                "content": "The sum is 5.\n\nSo the answer is \\boxed{5}.",
                "reasoning_content": "I add 2 and 3.\nThat gives 5 in total.",
            }
        if "6*7" in problem:
            if calls[problem] == 1:
                return "Six times seven is 41.\n\nSo the answer is \\boxed{41}."
            return "Six times seven is 42, as 6 * 7 = 42.\n\nSo the answer is \\boxed{42}."
        return "Ten minus four is seven.\n\nSo the answer is \\boxed{7}."

    return respond


class ServerScorer:
    """The p_end that the mock server's default logprobs imply, computed locally."""

    name = "expected"

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def score(self, chain: str, candidates: list[int]) -> list[float]:
        scores = []
        for offset in candidates:
            prefix = render_prompt(DEFAULT_SCORER_PROMPT, self.problem, chain[:offset])
            scores.append(math.exp(default_end_logprob(prefix)))
        return scores


def read_rows(folder: str | Path) -> list[dict]:
    """Return the rows of a published release, or of the parts of a staging folder."""
    folder = Path(folder)
    files = sorted((folder / "data").rglob("*.parquet")) or sorted(folder.glob("parts/*.parquet"))
    rows = []
    for file in files:
        rows.extend(pq.read_table(file).to_pylist())
    return rows


def read_quarantine(folder: str | Path) -> list[dict]:
    lines = []
    for file in sorted((Path(folder) / "quarantine").glob("*.jsonl")):
        lines.extend(json.loads(line) for line in file.read_text().splitlines())
    return lines


def part_digests(staging: Path) -> list[str]:
    return [
        hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(staging.glob("parts/*.parquet"))
    ]


def shard_usage(staging: Path) -> list[dict]:
    return [
        json.loads(file.read_text()).get("llm")
        for file in sorted(staging.glob("parts/shard-*.json"))
    ]


def test_model_scorer_steps_follow_server_logprobs(model_env, tmp_path):
    source = write_jsonl(tmp_path / "gsm8k_sample.jsonl", GSM8K_RECORDS)
    published = build_release(
        tmp_path / "out", [f"gsm8k:{source}"], options={"scorer": "model"}, shard_size=2
    )
    rows = read_rows(published.path)
    assert len(rows) == 3
    for record, row in zip(GSM8K_RECORDS, rows, strict=True):
        chain = normalize_chain("gsm8k", record["answer"])
        expected = partition(chain, ServerScorer(record["question"]), 30, 10)
        offsets = [(step["start"], step["end"]) for step in row["step_offsets"]]
        assert offsets == expected
        assert row["scorer"] == "model-logprob:mock-model"

    completions = model_env.model_requests("/completions")
    assert completions, "the scorer sent no /completions request"
    for body in completions:
        assert body["echo"] is True
        assert body["logprobs"] == 1
        assert body["prompt"].endswith(END_TOKEN)
    manifest = json.loads((Path(published.path) / "manifest.json").read_text())
    assert manifest["llm"]["requests"] == len(completions)
    assert manifest["llm"]["cached"] == 0
    assert manifest["parameters"]["options"]["llm"]["model"] == "mock-model"


def test_model_scorer_rerun_served_from_cache(model_env, tmp_path):
    source = write_jsonl(tmp_path / "gsm8k_sample.jsonl", GSM8K_RECORDS)
    sources = [f"gsm8k:{source}"]
    options = {"scorer": "model"}
    first = stage_release(tmp_path / "out", sources, options=options, shard_size=2)
    sent = model_env.counts["/completions"]
    second = stage_release(
        tmp_path / "out", sources, options=options, shard_size=2, order="reverse"
    )
    assert model_env.counts["/completions"] == sent
    usage = shard_usage(second)
    assert [shard["requests"] for shard in usage] == [0, 0]
    assert sum(shard["cached"] for shard in usage) == sent
    assert sum(shard["requests"] for shard in shard_usage(first)) == sent
    assert part_digests(second) == part_digests(first)


def test_model_scorer_failure_quarantines_record(model_env, tmp_path):
    source = write_jsonl(tmp_path / "gsm8k_sample.jsonl", GSM8K_RECORDS)
    model_env.rules["A box holds 6 eggs"] = "500"
    staging = stage_release(tmp_path / "out", [f"gsm8k:{source}"], options={"scorer": "model"})
    assert [row["source_id"] for row in read_rows(staging)] == ["line-1", "line-3"]
    [rejected] = read_quarantine(staging)
    assert rejected["reason"] == "llm_retries_exhausted"
    assert rejected["source_id"] == "line-2"
    assert "HTTP 500" in rejected["detail"]


def test_model_scorer_offline_backend_needs_no_server(tmp_path):
    source = write_jsonl(tmp_path / "gsm8k_sample.jsonl", GSM8K_RECORDS)
    sources = [f"gsm8k:{source}"]
    llm = {"backend": "offline", "model": None}
    first = stage_release(tmp_path / "a", sources, options={"scorer": "model"}, llm=llm, seed=1)
    second = stage_release(tmp_path / "b", sources, options={"scorer": "model"}, llm=llm, seed=1)
    rows = read_rows(first)
    assert len(rows) == 3
    assert rows[0]["scorer"] == "model-logprob:offline-heuristic"
    assert part_digests(first) == part_digests(second)
    [usage] = shard_usage(first)
    assert usage["backends"] == ["offline"]
    assert usage["estimated_cost_usd"] == 0.0


def test_teacher_keeps_only_verified_chains(model_env, tmp_path):
    model_env.chat_responder = teacher_responder()
    model_env.rules["Please refuse"] = "refusal"
    source = write_jsonl(tmp_path / "teacher_problems.jsonl", TEACHER_RECORDS)
    published = build_release(tmp_path / "out", [f"teacher:{source}?samples=3"])

    rows = {row["source_id"]: row for row in read_rows(published.path)}
    assert sorted(rows) == ["p1", "p2"]
    assert rows["p1"]["chain"] == (
        "<think>\nI add 2 and 3.\nThat gives 5 in total.\n</think>\n\n"
        "The sum is 5.\n\nSo the answer is \\boxed{5}."
    )
    assert rows["p2"]["predicted_answer"] == "42"
    assert rows["p2"]["source"] == "teacher"
    assert json.loads(rows["p1"]["metadata"])["teacher"] == {
        "model": "mock-model",
        "sample": 0,
        "samples_tried": 1,
    }
    assert json.loads(rows["p2"]["metadata"])["teacher"]["sample"] == 1

    reasons = {line["source_id"]: line["reason"] for line in read_quarantine(published.path)}
    assert reasons == {
        "p3": "teacher_unverified",
        "p4": "llm_refusal",
        "p5": "missing_field",
        "p1": "duplicate_id",
    }
    chat = model_env.model_requests("/chat/completions")
    # p1 once, p2 twice, p3 and p4 three times each.
    assert len(chat) == 9
    seeds = [body["seed"] for body in chat if "10-4" in body["messages"][1]["content"]]
    assert len(set(seeds)) == 3
    manifest = json.loads((Path(published.path) / "manifest.json").read_text())
    assert manifest["quarantine"]["by_reason"]["teacher_unverified"] == 1


def test_teacher_resamples_after_typed_failure(model_env, tmp_path):
    model_env.faults.extend(["truncated", "surrogate"])
    source = write_jsonl(tmp_path / "teacher_one.jsonl", [TEACHER_RECORDS[1]])
    model_env.chat_responder = lambda body: "Six times seven is 42.\n\nSo \\boxed{42}."
    staging = stage_release(tmp_path / "out", [f"teacher:{source}?samples=3"])
    [row] = read_rows(staging)
    assert json.loads(row["metadata"])["teacher"]["sample"] == 2


def test_teacher_all_samples_truncated_gives_reason(model_env, tmp_path):
    model_env.rules["6*7"] = "truncated"
    source = write_jsonl(tmp_path / "teacher_one.jsonl", [TEACHER_RECORDS[1]])
    staging = stage_release(tmp_path / "out", [f"teacher:{source}?samples=2"])
    assert read_rows(staging) == []
    [rejected] = read_quarantine(staging)
    assert rejected["reason"] == "llm_truncated"
    assert "2 sample(s)" in rejected["detail"]


def test_teacher_with_model_scorer_and_gsm8k_style(model_env, tmp_path):
    model_env.chat_responder = lambda body: "Add them.\n\nThe total is 7.\n\nSo \\boxed{7}."
    records = [{"question": "3 and 4?", "answer": "Three plus four.\n#### 7"}]
    source = write_jsonl(tmp_path / "teacher_gsm.jsonl", records)
    staging = stage_release(
        tmp_path / "out",
        [f"teacher:{source}?style=gsm8k&problem_field=question"],
        options={"scorer": "model"},
    )
    [row] = read_rows(staging)
    assert row["reference_answer"] == "7"
    assert row["scorer"] == "model-logprob:mock-model"
    assert model_env.counts["/completions"] >= 1


@pytest.mark.parametrize(
    ("source_options", "llm", "words"),
    [
        ("?samples=0", {}, "option samples"),
        ("?colour=red", {}, "unknown option"),
        ("?style=longcot", {}, "invalid style"),
        ("", {"backend": "offline", "model": None}, "teacher sources need a model"),
    ],
)
def test_teacher_invalid_setup_stops_planning(tmp_path, source_options, llm, words):
    source = write_jsonl(tmp_path / "teacher_problems.jsonl", TEACHER_RECORDS[:1])
    with pytest.raises(ConfigError, match=words):
        stage_release(tmp_path / "out", [f"teacher:{source}{source_options}"], llm=llm)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"scorer_prompt": "{problem} only"}, "must contain"),
        ({"end_token": ""}, "end_token"),
        ({"scorer": "model"}, None),
    ],
)
def test_model_options_checked_when_planning(tmp_path, options, words):
    llm = {"backend": "openai", "model": "mock-model" if words else None}
    with pytest.raises(ConfigError, match=words or "llm_model is required"):
        stage_release(tmp_path / "out", ["synthetic_math:?count=2"], options=options, llm=llm)


def test_end_token_probability_handles_merged_and_missing_tokens():
    prompt = "Step one.\n" + END_TOKEN

    def reply(tokens, logprobs, offsets, text=prompt):
        logprob_table = {"tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets}
        return LLMReply({"choices": [{"text": text, "logprobs": logprob_table}]})

    split = reply(["Step one.\n", "</", "think>"], [None, -0.1, -0.2], [0, 10, 12])
    assert end_token_probability(split, prompt, END_TOKEN) == pytest.approx(math.exp(-0.3))
    merged = reply(["Step one.", "\n</think>"], [None, -0.5], [0, 9])
    assert end_token_probability(merged, prompt, END_TOKEN) == pytest.approx(math.exp(-0.5))
    first = reply([prompt], [None], [0])
    assert end_token_probability(first, prompt, END_TOKEN).reason == INVALID_RESPONSE
    no_echo = reply(["x"], [-1.0], [0], text="x")
    assert "echo" in end_token_probability(no_echo, prompt, END_TOKEN).detail
    missing = LLMReply({"choices": [{"text": prompt, "logprobs": None}]})
    assert "prompt logprobs" in end_token_probability(missing, prompt, END_TOKEN).detail


def test_render_prompt_replaces_placeholders_once():
    template = "Q: {problem}\nA: {prefix}"
    assert render_prompt(template, "{prefix} in a problem", "chain") == (
        "Q: {prefix} in a problem\nA: chain"
    )
