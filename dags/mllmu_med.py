"""
### MLLMU-Med

An unlearning benchmark for biomedical multimodal models: synthetic patients
own real or phantom images, training records weave their private details into
the text, and a share of correct answers is replaced with plausible wrong ones.
Nested forget sets of 5%, 10% and 15% of patients come with their retain sets,
paraphrased test views with transformed images, untouched real questions and a
ledger of every injection.

Tasks: `plan` reads the sources, draws every patient and injection, and splits
the release into shards; `generate` runs once per shard; `validate` checks every
shard and the whole release against the data contract (including the leak
audit); `publish` makes the release visible atomically and updates the
`corpusforge_mllmu_med` Asset.

With no `sources`, the run uses 120 phantom patients, the DICOM files inside the
pydicom and nibabel wheels, and the project's fact table. `shard_size` counts
patients (or real questions) per shard.
"""

from airflow.sdk import Param

# The defaults repeat the builder's default_options, because importing the
# builder would slow down parsing; a test checks that they agree.
from _factory import dataset_dag

mllmu_med_dag = dataset_dag(
    "mllmu_med",
    __doc__,
    {
        "injection_ratio": Param(
            0.3,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of the patients' question-answer pairs whose answer is replaced "
            "with a plausible wrong one.",
        ),
        "real_share": Param(
            0.2,
            type="number",
            minimum=0,
            maximum=0.9,
            description="Share of the knowledge (image groups and text questions) of sources "
            "with role=auto that is held out, untouched, as the real split.",
        ),
        "image_storage": Param(
            "embedded",
            type="string",
            enum=["embedded", "images_config"],
            description="embedded: every record carries its image; images_config: each image "
            "is stored once in the images config and records carry its id.",
        ),
        "max_image_side": Param(
            512,
            type="integer",
            minimum=0,
            maximum=8192,
            description="Maximum length in pixels of the longer side of real images; larger "
            "images are scaled down. 0 keeps the original size.",
        ),
        "images_per_patient": Param(
            2,
            type="integer",
            minimum=1,
            maximum=64,
            description="Maximum number of real image groups given to one synthetic patient.",
        ),
        "forget_unit": Param(
            "patient",
            type="string",
            enum=["patient", "institution"],
            description="Unit of the forget bands: single patients, or whole "
            "institutions (bands then approximate 5%, 10% and 15% of patients).",
        ),
        "institutions": Param(
            0,
            type="integer",
            minimum=0,
            maximum=1000,
            description="Number of institutions the patients are spread over. 0: one per 25 "
            "patients, from 2 to 20.",
        ),
        "text_backend": Param(
            "template",
            type="string",
            enum=["template", "model"],
            description="Writer of paraphrases and profile sentences: template works offline, "
            "model asks the model of llm_model and quarantines replies that lose a private value.",
        ),
    },
)
