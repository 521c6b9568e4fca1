"""
### Med-MIM

Medical multi-image question-answer records for four abilities: temporal
understanding, reasoning, comparison and co-reference, after Med-MIM
(arXiv 2505.19031). Splits: `train`, `heldin` (other patients and images of the
same sources) and `heldout` (images and sources kept out of train).

Tasks: `plan` reads every source, decodes every image, assigns images to
splits and chooses every record. `generate` renders the images and rows of one
shard. `validate` checks every shard and the whole release against the data
contract. `publish` makes the release visible atomically and updates the
`corpusforge_med_mim` Asset.

With no `sources`, the run uses seeded phantom series (train and heldin) and
the real DICOM files shipped in pydicom and nibabel (heldout).
"""

from airflow.sdk import Param

# The defaults repeat the builder's, because importing it would slow down
# parsing; a test checks that they agree.
from _factory import dataset_dag

med_mim_dag = dataset_dag(
    "med_mim",
    __doc__,
    {
        "records": Param(
            1430, type="integer", minimum=0, description="Records in the train split."
        ),
        "heldin_records": Param(
            200, type="integer", minimum=0, description="Records in the heldin split."
        ),
        "heldout_records": Param(
            120, type="integer", minimum=0, description="Records in the heldout split."
        ),
        "ability_mix": Param(
            "temporal:9000,reasoning:4400,comparison:3200,coreference:12000",
            type="string",
            description="Relative weight of each ability, as 'ability:weight' pairs. Default: "
            "the non-composed part of the released Med-MIM training set.",
        ),
        "closed_share": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of multiple-choice questions in each split and ability.",
        ),
        "min_images": Param(
            2,
            type="integer",
            minimum=2,
            maximum=4,
            description="Minimum number of images per record.",
        ),
        "max_images": Param(
            4,
            type="integer",
            minimum=2,
            maximum=4,
            description="Maximum number of images per record.",
        ),
        "heldin_share": Param(
            0.15,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of each source's images (whole patients) kept for heldin.",
        ),
        "heldout_share": Param(
            0.3,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of each composed source's images (vqa_rad, image_qa) kept for "
            "heldout.",
        ),
        "image_storage": Param(
            "embedded",
            type="string",
            enum=["embedded", "table"],
            description="embedded: PNG bytes in every record; table: each image once in the "
            "`images` config, referenced by `image_ids`.",
        ),
        "max_image_side": Param(
            512,
            type="integer",
            minimum=32,
            description="Longer side of published images in pixels; larger images are downscaled.",
        ),
        "composer": Param(
            "template",
            type="string",
            enum=["template", "model"],
            description="Question writer. template: offline templates. model: the model of "
            "llm_model rewords the template questions, and a second request verifies them.",
        ),
    },
)
