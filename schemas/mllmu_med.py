"""Arrow schemas of the MLLMU-Med tables: QA records, the injection ledger and stored images.

`records` contains every question-answer record in physical splits by band of
patients; the dataset card assembles the forget configs from them. `image` is a
Hugging Face Image column. It is null in text-only records, and in every record
when the release stores images once in the `images` config, where `image_id`
(the sha256 of the PNG bytes) finds them.
"""

from __future__ import annotations

import pyarrow as pa

from corpusforge.schemas.features import image_field, with_features

SCHEMA_VERSION = "1.0.0"

RECORDS = with_features(
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("patient_id", pa.string(), nullable=True),
            pa.field("institution_id", pa.string(), nullable=True),
            pa.field("study_id", pa.string(), nullable=True),
            pa.field("band", pa.string(), nullable=False),
            pa.field("variant", pa.string(), nullable=False),
            pa.field("scenario", pa.string(), nullable=False),
            pa.field("task", pa.string(), nullable=False),
            pa.field("modality", pa.string(), nullable=False),
            pa.field("field", pa.string(), nullable=False),
            pa.field("question", pa.string(), nullable=False),
            pa.field("options", pa.list_(pa.string()), nullable=False),
            pa.field("answer", pa.string(), nullable=False),
            pa.field("answer_letter", pa.string(), nullable=True),
            pa.field("correct_answer", pa.string(), nullable=False),
            pa.field("correct_letter", pa.string(), nullable=True),
            pa.field("injected", pa.bool_(), nullable=False),
            pa.field("corrupted", pa.bool_(), nullable=False),
            pa.field("ledger_ids", pa.list_(pa.string()), nullable=False),
            image_field("image", nullable=True),
            pa.field("image_id", pa.string(), nullable=True),
            pa.field("image_phash", pa.string(), nullable=True),
            pa.field("source", pa.string(), nullable=False),
            pa.field("source_id", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
        ]
    )
)

LEDGER = with_features(
    pa.schema(
        [
            pa.field("ledger_id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("patient_id", pa.string(), nullable=False),
            pa.field("institution_id", pa.string(), nullable=False),
            pa.field("study_id", pa.string(), nullable=True),
            pa.field("band", pa.string(), nullable=False),
            pa.field("forget_configs", pa.list_(pa.string()), nullable=False),
            pa.field("field", pa.string(), nullable=False),
            pa.field("value", pa.string(), nullable=False),
            pa.field("correct_value", pa.string(), nullable=True),
            pa.field("source", pa.string(), nullable=False),
            pa.field("source_id", pa.string(), nullable=False),
            pa.field("record_ids", pa.list_(pa.string()), nullable=False),
            pa.field("test_record_ids", pa.list_(pa.string()), nullable=False),
        ]
    )
)

IMAGES = with_features(
    pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            image_field("image", nullable=False),
            pa.field("image_phash", pa.string(), nullable=False),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("band", pa.string(), nullable=False),
            pa.field("variant", pa.string(), nullable=False),
            pa.field("study_id", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
        ]
    )
)

CONFIGS = {"records": RECORDS, "ledger": LEDGER, "images": IMAGES}
