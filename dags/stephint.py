"""
### StepHint

Verified reasoning chains split into steps by adaptive partitioning, with
multi-level hints (level k = the first k steps) for RL with verifiable rewards.

Tasks: `plan` resolves the sources and splits them into shards, and `generate`
runs once per shard. `validate` checks every shard and the whole release
against the data contract. `publish` makes the release visible atomically and
updates the `corpusforge_stephint` Asset.

With no `sources`, the run uses the embedded synthetic math word problems.
"""

from airflow.sdk import Param

# The defaults repeat the partitioner's constants, because importing it would
# slow down parsing; a test checks that they agree.
from _factory import dataset_dag

stephint_dag = dataset_dag(
    "stephint",
    __doc__,
    {
        "scorer": Param(
            "heuristic",
            type="string",
            enum=["heuristic", "model"],
            description="Boundary scorer for adaptive partitioning. heuristic: text rules; "
            "model: the probability of end_token after each candidate boundary, from the "
            "llm_backend model's prompt logprobs (needs /v1/completions with echo and logprobs, "
            "as vLLM serves them).",
        ),
        "min_step_chars": Param(
            30,
            type="integer",
            minimum=1,
            description="Minimum distance between two step boundaries, in characters.",
        ),
        "max_steps": Param(
            10,
            type="integer",
            minimum=1,
            maximum=256,
            description="Maximum number of steps per chain.",
        ),
        "end_token": Param(
            "</think>",
            type="string",
            minLength=1,
            description="Text whose probability the model scorer reads after each candidate "
            "boundary: the model's end-of-thinking token.",
        ),
        "scorer_prompt": Param(
            "{problem}\n\n{prefix}",
            type="string",
            pattern=r"\{prefix\}",
            description="Prompt of the model scorer; {problem} and {prefix} (the chain up to "
            "the candidate boundary) are replaced, and end_token is appended. Write the "
            "model's chat template here when it has one.",
        ),
    },
)
