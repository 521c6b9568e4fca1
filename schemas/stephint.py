"""Arrow schema of the StepHint `chains` table: one verified reasoning chain per row."""

from __future__ import annotations

import pyarrow as pa

from corpusforge.schemas.features import with_features

SCHEMA_VERSION = "1.0.0"

STEP_OFFSET = pa.struct([("start", pa.int32()), ("end", pa.int32())])

HINT = pa.struct(
    [
        ("level", pa.int32()),
        ("num_steps", pa.int32()),
        ("text", pa.string()),
        ("answer_in_hint", pa.bool_()),
    ]
)

CHAINS = with_features(
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("source_file", pa.string(), nullable=False),
            pa.field("source_id", pa.string(), nullable=False),
            pa.field("source_split", pa.string(), nullable=False),
            pa.field("problem", pa.string(), nullable=False),
            pa.field("reference_answer", pa.string(), nullable=False),
            pa.field("source_text", pa.string(), nullable=False),
            pa.field("chain", pa.string(), nullable=False),
            pa.field("steps", pa.list_(pa.string()), nullable=False),
            pa.field("step_offsets", pa.list_(STEP_OFFSET), nullable=False),
            pa.field("num_steps", pa.int32(), nullable=False),
            pa.field("hints", pa.list_(HINT), nullable=False),
            pa.field("partition_method", pa.string(), nullable=False),
            pa.field("scorer", pa.string(), nullable=False),
            pa.field("predicted_answer", pa.string(), nullable=False),
            pa.field("verified", pa.bool_(), nullable=False),
            pa.field("verification", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
        ]
    )
)

CONFIGS = {"chains": CHAINS}
