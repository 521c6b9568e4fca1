"""MLLMU-Med builder: private-record and factual-error injections for unlearning evaluation.

The planner (`planner.py`) draws patients, injections, bands and the letter plan
once per release and puts each shard's patients in its units. `generate` turns
one shard into rows of its (config, split):

- `records/band_*`: the training-format and evaluation records of one band;
- `records/test_*`: the forget bands' evaluation records, paraphrased, with
  transformed images;
- `records/real`: untouched public (or fact table) questions;
- `ledger/entries`: every injected private value and corrupted answer;
- `images/images` (with image_storage=images_config): each image once, by content hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpusforge.generators.base import (
    DatasetBuilder,
    PlanContext,
    Rejected,
    ShardContext,
    ShardTask,
    SourceLicense,
)
from corpusforge.generators.imaging import phantom
from corpusforge.generators.mllmu_med import formats, images, ledger, planner, sources, splits
from corpusforge.generators.mllmu_med.formats import RecordFactory, RecordSpec
from corpusforge.generators.mllmu_med.text import build_texts, get_backend, text_failure

if TYPE_CHECKING:
    from corpusforge.generators.llm.errors import LLMFailure

DEFAULT_PHANTOM_PATIENTS = 120
# Patients whose records are built together, so a model backend gets their texts at once.
TEXT_BLOCK_UNITS = 16

_CITATION_MLLMU_MED = """@article{xu2025mllmumed,
  title   = {From Learning to Unlearning: Biomedical Security Protection in Multimodal
             Large Language Models},
  author  = {Xu, Dunyuan and Yang, Xikai and Li, Yaoqian and Li, Jinpeng and Heng, Pheng-Ann},
  journal = {arXiv preprint arXiv:2508.04192},
  year    = {2025}
}

@inproceedings{liu2025mllmubench,
  title     = {Protecting Privacy in Multimodal Large Language Models with MLLMU-Bench},
  author    = {Liu, Zheyuan and Dou, Guangyao and Jia, Mengzhao and Tan, Zhaoxuan and
               Zeng, Qingkai and Yuan, Yongle and Jiang, Meng},
  booktitle = {Proceedings of NAACL 2025},
  year      = {2025},
  note      = {arXiv:2410.22108}
}

@article{wu2025medforget,
  title   = {MedForget: Hierarchy-Aware Multimodal Unlearning Testbed for Medical AI},
  author  = {Wu, Fengli and Patil, Vaidehi and Yoon, Jaehong and Zhang, Yue and Bansal, Mohit},
  journal = {arXiv preprint arXiv:2512.09867},
  year    = {2025}
}"""

_EMBEDDED = SourceLicense(name="corpusforge embedded generators", license="Apache-2.0")
_LICENSES = {
    "vqa_rad": SourceLicense(
        name="VQA-RAD (Lau et al.; images from MedPix)",
        license="CC0-1.0",
        url="https://osf.io/89kps/",
        citation="""@article{lau2018vqarad,
  title   = {A dataset of clinically generated visual questions and answers about
             radiology images},
  author  = {Lau, Jason J. and Gayen, Soumya and Ben Abacha, Asma and
             Demner-Fushman, Dina},
  journal = {Scientific Data},
  volume  = {5},
  pages   = {180251},
  year    = {2018}
}""",
        contamination_warning="VQA-RAD is a public benchmark; its test questions are in the "
        "records, so do not train on this release and then evaluate on VQA-RAD.",
    ),
    "medqa": SourceLicense(
        name="MedQA-USMLE (Jin et al.)",
        license="MIT",
        url="https://github.com/jind11/MedQA",
        citation="""@article{jin2021medqa,
  title   = {What Disease does this Patient Have? A Large-scale Open Domain Question
             Answering Dataset from Medical Exams},
  author  = {Jin, Di and Pan, Eileen and Oufattole, Nassim and Weng, Wei-Hung and
             Fang, Hanyi and Szolovits, Peter},
  journal = {Applied Sciences},
  volume  = {11},
  number  = {14},
  year    = {2021}
}""",
        contamination_warning="MedQA-USMLE test questions are public benchmark data; do not "
        "train on them and then evaluate on MedQA.",
    ),
    "pubmedqa": SourceLicense(
        name="PubMedQA PQA-L (Jin et al.)",
        license="MIT",
        url="https://github.com/pubmedqa/pubmedqa",
        citation="""@inproceedings{jin2019pubmedqa,
  title     = {PubMedQA: A Dataset for Biomedical Research Question Answering},
  author    = {Jin, Qiao and Dhingra, Bhuwan and Liu, Zhengping and Cohen, William and
               Lu, Xinghua},
  booktitle = {Proceedings of EMNLP-IJCNLP 2019},
  year      = {2019}
}""",
        contamination_warning="PubMedQA PQA-L is the expert-labelled evaluation set of "
        "PubMedQA; do not train on it and then evaluate on PubMedQA.",
    ),
    "image_qa": None,
    "phantom": _EMBEDDED,
    "facts": _EMBEDDED,
    "embedded_dicom": SourceLicense(
        name="DICOM test files shipped in the pydicom and nibabel wheels",
        license="MIT (pydicom), MIT (nibabel); see each package's test data notes",
    ),
}

# Modules whose code decides the content of embedded sources: their bytes are the
# source's sha256, so a change to the generator changes the fingerprint.
_EMBEDDED_CODE = {
    "phantom": ("imaging/phantom.py", "imaging/phantom_geometry.py", "mllmu_med/images.py"),
    "facts": ("mllmu_med/facts.py",),
    "embedded_dicom": ("imaging/embedded.py", "imaging/dicom.py"),
}


class MllmuMedBuilder(DatasetBuilder):
    name = "mllmu_med"
    pretty_name = "MLLMU-Med unlearning benchmark"
    formats = sources.FORMATS
    tags = ("medical", "unlearning", "privacy", "multimodal", "visual-question-answering")
    license = "other"
    method_citation = _CITATION_MLLMU_MED
    description = """
An unlearning benchmark for biomedical multimodal models after MLLMU-Med
(arXiv 2508.04192), with the split design and task formats of MLLMU-Bench
(arXiv 2410.22108) and the institution, patient and study hierarchy of MedForget.
Synthetic patients own real or phantom images; training records weave their
private details (name, date of birth, address, phone, email, medical record
number, insurance ID) into the text, and a share of correct question-answer
pairs is replaced with plausible wrong answers.

Configs `forget_05`, `forget_10` and `forget_15` each have the splits `forget`
(the patients to unlearn; each forget set contains the smaller ones), `retain`
(all other patients), `test` (the forget set's evaluation questions paraphrased,
with rotated, cropped and contrast-changed images) and `real` (untouched
questions for measuring retained utility). The records are stored once, in
bands of patients (config `records`); each forget config lists the band files.
Config `ledger` lists every injected private value and corrupted answer with the
ids of the records that carry it.

Each record has a `task`: `train` (the fine-tuning text), `classification`
(four options, `answer_letter` is the target), `generation` or `cloze` (`____`
marks the blank), and a `modality`: `image_text` or `text_only`. `answer` is
the value the training data teaches, and `correct_answer` the true value; they
differ exactly where `corrupted` is true. Images are PNG files re-encoded
without metadata, in the Hugging Face Image layout, or in config `images` keyed
by `image_id` (the sha256 of the PNG bytes) when the release was built with
image_storage=images_config; `corpusforge.load` attaches them then.

All identities are fictional: phones use the reserved 555-0100 to 555-0199
lines, emails use example.org and example.com, and record numbers start with
`CFM-`.
"""

    def default_sources(self) -> list[str]:
        return [
            f"phantom:?patients={DEFAULT_PHANTOM_PATIENTS}",
            "embedded_dicom:",
            "facts:",
        ]

    def default_options(self) -> dict[str, Any]:
        return {
            "injection_ratio": 0.3,
            "real_share": 0.2,
            "image_storage": "embedded",
            "max_image_side": 512,
            "images_per_patient": 2,
            "forget_unit": "patient",
            "institutions": 0,
            "text_backend": "template",
        }

    def source_license(self, fmt: str) -> SourceLicense | None:
        return _LICENSES.get(fmt)

    def resolve_source(self, fmt: str, path: str, options: dict[str, str]) -> tuple[str, str, str]:
        sources.check_options(fmt, path, options)
        if fmt in sources.EMBEDDED_FORMATS:
            digest = hashlib.sha256()
            root = Path(sources.__file__).resolve().parent.parent
            for relative in _EMBEDDED_CODE[fmt]:
                digest.update((root / relative).read_bytes())
            return "", fmt, digest.hexdigest()
        from corpusforge.generators.sources import sha256_of_path

        resolved = sources.resolve(fmt, path, options)
        return str(resolved), resolved.name, sha256_of_path(resolved)

    def plan(self, ctx: PlanContext) -> list[ShardTask]:
        return planner.plan_release(ctx)

    # Generation --------------------------------------------------------------------

    def generate(self, ctx: ShardContext) -> Iterator[dict[str, Any] | Rejected]:
        # A worker process may generate many shards. Phantom layers cached for
        # earlier shards are seldom drawn again (only for the test views of forget
        # patients), and keeping them makes the worker's memory grow with the release.
        phantom.clear_layers_cache()
        shard = ctx.shard
        options = planner.Options.parse(ctx.options)
        label = f"mllmu_med shard {shard.index + 1} of {ctx.num_shards}"
        backend = get_backend(options.text_backend, ctx.options.get("llm"), label)
        factory = RecordFactory(ctx.dataset, ctx.seed, backend)
        pictures = images.StudyImages(
            ctx.dataset, ctx.seed, options.max_image_side, planner.DEFAULT_PHANTOM_SIZE
        )
        embed = options.image_storage == "embedded"
        for unit in shard.units:
            if "quarantine" in unit:
                for data in unit["quarantine"]:
                    yield Rejected(**data)
        units = [unit for unit in shard.units if "quarantine" not in unit]

        if shard.config == planner.RECORDS:
            if shard.split == splits.REAL_SPLIT:
                for entry in units:
                    factory.start_letters("real", entry["letters"])
                    for spec in factory.real_records([entry]):
                        yield record_row(spec, entry["study"], pictures, embed)
                return
            variant = formats.TEST if shard.split.startswith("test_") else formats.ORIGINAL

            def unit_records(unit: dict[str, Any]) -> list[RecordSpec]:
                if variant == formats.TEST:
                    factory.start_letters("test", unit["test_letters"])
                else:
                    factory.start_letters("bands", unit["letters"])
                return list(factory.patient_records(unit, variant))

            for block in _blocks(units):
                specs = build_texts(backend, unit_records, block)
                for unit, unit_specs in zip(block, specs, strict=True):
                    studies = {study["study_id"]: study for study in unit["studies"]}
                    for spec in unit_specs:
                        failure = text_failure(backend, spec.text_fields())
                        if failure is not None:
                            yield rejected_record(spec, failure)
                            continue
                        study = studies.get(spec.image[0]) if spec.image else None
                        yield record_row(spec, study, pictures, embed)
        elif shard.config == planner.LEDGER:
            for block in _blocks(units):
                records = build_texts(backend, partial(ledger_records, factory), block)
                for unit, unit_specs in zip(block, records, strict=True):
                    kept = [
                        spec
                        for spec in unit_specs
                        if text_failure(backend, spec.text_fields()) is None
                    ]
                    configs = splits.forget_configs_of(unit["band"])
                    yield from ledger.ledger_rows(unit, kept, configs)
        elif shard.config == planner.IMAGES:
            yield from image_rows(units, pictures)
        else:
            raise RuntimeError(f"mllmu_med has no config {shard.config!r}")

    # Dataset card ------------------------------------------------------------------

    def card_configs(self, manifest: dict[str, Any]) -> list[dict[str, Any]] | None:
        extra = [planner.LEDGER]
        if planner.IMAGES in manifest["splits"]:
            extra.append(planner.IMAGES)
        return splits.card_configs(manifest["shards"], planner.RECORDS, extra)

    def card_sections(self, manifest: dict[str, Any], release_dir: Path) -> str:
        lines = ["## Forget sets\n"]
        lines.append("| config | forget bands | retain bands |\n|---|---|---|")
        for name, count in splits.FORGET_CONFIGS.items():
            forget = ", ".join(band.split for band in splits.BANDS[:count])
            retain = ", ".join(band.split for band in splits.BANDS[count:])
            lines.append(f"| {name} | {forget} | {retain} |")
        lines.append(
            "\nThe `test` split of a forget config holds the `test_*` bands of its forget "
            "bands. Splitting is by patient: no patient, private value or image (by "
            "content hash or perceptual hash) is on both sides of a forget/retain "
            "boundary, which the release rules in `validation/summary.json` check."
        )
        lines.append(
            "\nLoad with images attached, whatever the image storage:\n\n"
            "```python\nimport corpusforge\n\n"
            f'table = corpusforge.load("path/to/mllmu_med/{manifest["release"]}", '
            '"forget_05", "forget")\n```\n'
        )
        lines.append(
            "Score a model with `corpusforge score mllmu_med --release R --predictions FILE` "
            "(see `corpusforge.generators.mllmu_med.scoring` for the metrics)."
        )
        return "\n".join(lines)


def record_row(
    spec: RecordSpec,
    study: dict[str, Any] | None,
    pictures: images.StudyImages,
    embed: bool,
) -> dict[str, Any]:
    """Return the `records` row of a spec, attaching its image."""
    image_cell = image_id = image_phash = None
    if spec.image is not None and study is not None:
        encoded = pictures.get(study, spec.image[1])
        image_id, image_phash = encoded.image_id, encoded.phash
        if embed:
            image_cell = encoded.cell()
        spec.metadata.setdefault("image_size", [encoded.width, encoded.height])
        if spec.image[1] == formats.TEST:
            spec.metadata["transform"] = study["test_transform"]
    return {
        "id": spec.id,
        "patient_id": spec.patient_id,
        "institution_id": spec.institution_id,
        "study_id": spec.study_id,
        "band": spec.band,
        "variant": spec.variant,
        "scenario": spec.scenario,
        "task": spec.task,
        "modality": spec.modality,
        "field": spec.field,
        "question": spec.question,
        "options": spec.options,
        "answer": spec.answer,
        "answer_letter": spec.answer_letter,
        "correct_answer": spec.correct_answer,
        "correct_letter": spec.correct_letter,
        "injected": spec.injected,
        "corrupted": spec.corrupted,
        "ledger_ids": spec.ledger_ids,
        "image": image_cell,
        "image_id": image_id,
        "image_phash": image_phash,
        "source": spec.source,
        "source_id": spec.source_id,
        "metadata": formats.metadata_json(spec.metadata),
    }


def ledger_records(factory: RecordFactory, unit: dict[str, Any]) -> list[RecordSpec]:
    """Return the records of one patient that its ledger rows list: original and test."""
    factory.start_letters("bands", unit["letters"])
    records = list(factory.patient_records(unit, formats.ORIGINAL))
    forget = {band.code for band in splits.FORGET_BANDS}
    if unit["band"] in forget:
        factory.start_letters("test", unit["test_letters"])
        records += list(factory.patient_records(unit, formats.TEST))
    return records


def ledger_rows_of(factory: RecordFactory, unit: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the ledger rows of one patient, from its original and test records."""
    records = ledger_records(factory, unit)
    yield from ledger.ledger_rows(unit, records, splits.forget_configs_of(unit["band"]))


def rejected_record(spec: RecordSpec, failure: LLMFailure) -> Rejected:
    """Return the quarantine entry of a record whose text the model failed to write."""
    record = {
        "id": spec.id,
        "patient_id": spec.patient_id,
        "variant": spec.variant,
        "task": spec.task,
        "modality": spec.modality,
        "field": spec.field,
    }
    return failure.to_rejected(source=spec.source, source_id=spec.id, line=None, record=record)


def _blocks(units: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Yield the units in blocks of TEXT_BLOCK_UNITS, whose model texts are fetched together."""
    for start in range(0, len(units), TEXT_BLOCK_UNITS):
        yield units[start : start + TEXT_BLOCK_UNITS]


def image_rows(units: list[dict[str, Any]], pictures: images.StudyImages) -> Iterator[dict]:
    """Yield each distinct image of the units once: originals, test views and real images."""
    forget = {band.code for band in splits.FORGET_BANDS}
    seen: set[str] = set()
    for unit in units:
        if "patient" in unit:
            views = [(study, formats.ORIGINAL) for study in unit["studies"]]
            if unit["band"] in forget:
                views += [(study, formats.TEST) for study in unit["studies"]]
            band = unit["band"]
        else:
            views = [(unit["study"], formats.ORIGINAL)]
            band = splits.REAL_BAND
        for study, variant in views:
            encoded = pictures.get(study, variant)
            if encoded.image_id in seen:
                continue
            seen.add(encoded.image_id)
            yield {
                "image_id": encoded.image_id,
                "image": encoded.cell(),
                "image_phash": encoded.phash,
                "width": encoded.width,
                "height": encoded.height,
                "band": band,
                "variant": variant,
                "study_id": study["study_id"],
                "metadata": json.dumps({"descriptor": study["descriptor"]}, sort_keys=True),
            }
