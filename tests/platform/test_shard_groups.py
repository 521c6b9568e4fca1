"""Grouping shards into fewer generate tasks: balanced, deterministic, same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    group_shards,
    load_plan,
    plan_release,
)


def _plan_of(weights: list[int | None]) -> dict:
    shards = []
    for index, weight in enumerate(weights):
        entry = {"index": index, "config": "c", "split": "train"}
        if weight is not None:
            entry["work"] = weight
        shards.append(entry)
    return {"shards": shards}


def _work(plan: dict, group: list[int]) -> int:
    return sum(plan["shards"][index].get("work", 1) for index in group)


def test_no_limit_gives_one_group_per_shard():
    plan = _plan_of([5, 1, 3])
    assert group_shards(plan, None) == [[0], [1], [2]]
    assert group_shards(plan, 3) == [[0], [1], [2]]
    assert group_shards(plan, 50) == [[0], [1], [2]]


def test_one_shard_and_one_group():
    assert group_shards(_plan_of([7]), 4) == [[0]]
    assert group_shards(_plan_of([7, 2, 9]), 1) == [[0, 1, 2]]


def test_groups_balance_planned_work():
    # Shards of the MLLMU-Med kind: a few large ones among many small ones.
    weights = [60, 60, 4, 4, 4, 30, 30, 2, 2, 2, 10]
    plan = _plan_of(weights)
    groups = group_shards(plan, 2)
    assert sorted(index for group in groups for index in group) == list(range(len(weights)))
    loads = [_work(plan, group) for group in groups]
    assert max(loads) - min(loads) <= max(weights) // 10
    assert all(group == sorted(group) for group in groups)
    assert [group[0] for group in groups] == sorted(group[0] for group in groups)


def test_grouping_is_deterministic_with_ties():
    plan = _plan_of([3, 3, 3, 3, 3])
    first = group_shards(plan, 2)
    assert first == group_shards(plan, 2)
    assert first == [[0, 2, 4], [1, 3]]


def test_plans_without_unit_counts_weigh_each_shard_one():
    plan = _plan_of([None, None, None, None])
    assert group_shards(plan, 2) == [[0, 2], [1, 3]]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2", [2]])
def test_invalid_group_count_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="max_generate_tasks"):
        group_shards(_plan_of([1, 1, 1]), bad)


def test_planned_shards_record_their_work(tmp_path: Path):
    staging = plan_release(
        BuildParams(
            dataset="stephint",
            release="r1",
            seed=4,
            output_root=str(tmp_path),
            sources=["synthetic_math:?count=25"],
            shard_size=10,
        ),
        RunInfo(run_id="groups", started_at="2026-01-01T00:00:00+00:00"),
    )
    plan = load_plan(staging)
    assert [entry["work"] for entry in plan["shards"]] == [10, 10, 5]
    groups = group_shards(plan, 2)
    assert groups == [[0, 2], [1]]
    # A group only decides which task writes a shard: shards written in group
    # order are the shards the plan describes.
    for group in groups:
        for index in group:
            assert generate_shard(staging, index)["rows"] == plan["shards"][index]["work"]
