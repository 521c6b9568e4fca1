"""Arrow schemas of Med-MIM: multi-image question-answer records and their image table.

`qa` has one question about an ordered image set per row. `image_ids` lists the
sha256 of each image's PNG bytes in the order the images are shown. With
`image_storage=embedded` (the default) `images` contains the PNGs; with
`image_storage=table` it is null and each image is stored once in the `images`
config, keyed by the same id in `image_id`, which `corpusforge.load` uses to
attach the images again.
"""

from __future__ import annotations

import pyarrow as pa

from corpusforge.schemas.features import image_field, image_list_field, with_features

SCHEMA_VERSION = "1.0.0"

IMAGE_METADATA = pa.struct(
    [
        ("patient", pa.string()),
        ("visit", pa.int32()),
        ("follow_up", pa.int32()),
        ("age", pa.int32()),
        ("sex", pa.string()),
        ("view", pa.string()),
        ("modality", pa.string()),
        ("region", pa.string()),
        ("plane", pa.string()),
        ("source_image", pa.string()),
        ("phash", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)

TURN = pa.struct([("role", pa.string()), ("content", pa.string())])

QA = with_features(
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("ability", pa.string(), nullable=False),
            pa.field("question_type", pa.string(), nullable=False),
            pa.field("task", pa.string(), nullable=False),
            pa.field("num_images", pa.int32(), nullable=False),
            pa.field("image_ids", pa.list_(pa.string()), nullable=False),
            image_list_field("images", nullable=True),
            pa.field("image_metadata", pa.list_(IMAGE_METADATA), nullable=False),
            pa.field("question", pa.string(), nullable=False),
            pa.field("options", pa.list_(pa.string()), nullable=False),
            pa.field("answer", pa.string(), nullable=False),
            pa.field("correct_option", pa.string(), nullable=True),
            pa.field("referenced_images", pa.list_(pa.int32()), nullable=False),
            pa.field("conversation", pa.list_(TURN), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("source_file", pa.string(), nullable=False),
            pa.field("generator", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
        ]
    )
)

IMAGES = with_features(
    pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            image_field("image"),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("patient", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("source_image", pa.string(), nullable=False),
            pa.field("phash", pa.string(), nullable=False),
        ]
    )
)

CONFIGS = {"qa": QA, "images": IMAGES}
