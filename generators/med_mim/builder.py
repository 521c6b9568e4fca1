"""Med-MIM builder: medical multi-image question-answer records for four abilities.

Everything random is decided when the run is planned: the plan reads every
source, decodes every image, assigns images to splits, chooses every record and
deals the correct letters. Shard units carry the chosen records and the facts
of their images, so a shard only renders images and assembles rows, and the
same parameters give the same bytes however many workers run the shards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from corpusforge.generators.base import (
    DatasetBuilder,
    PlanContext,
    Rejected,
    ResolvedSource,
    ShardContext,
    ShardTask,
    SourceLicense,
)
from corpusforge.generators.errors import ConfigError, SourceError
from corpusforge.generators.med_mim import card, images, planner, records, splits
from corpusforge.generators.med_mim import catalog as catalog_module
from corpusforge.generators.med_mim.composer import get_composer, revise_items
from corpusforge.generators.med_mim.facts import ImageFacts
from corpusforge.generators.med_mim.sources import locate_nih_file
from corpusforge.generators.sources import SourceSpec, resolve_path

QA_CONFIG = "qa"
IMAGES_CONFIG = "images"
IMAGE_STORAGES = ("embedded", "table")
FORMATS = ("nih_cxr14", "vqa_rad", "image_qa", "phantom_series", "embedded_dicom")
SOURCE_OPTIONS = {
    "nih_cxr14": ("image_root", "split"),
    "vqa_rad": ("image_root", "split"),
    "image_qa": (
        "image_root",
        "image_field",
        "question_field",
        "answer_field",
        "id_field",
        "split",
    ),
    "phantom_series": ("patients", "visits", "size", "split"),
    "embedded_dicom": ("include_placeholder", "split"),
}

_CITATION_MED_MIM = """@inproceedings{yang2025medmim,
  title     = {Medical Large Vision Language Models with Multi-Image Visual Ability},
  author    = {Yang, Xikai and Miao, Juzheng and Yuan, Yuchen and Wang, Jiaze and Dou, Qi
               and Li, Jinpeng and Heng, Pheng-Ann},
  booktitle = {Medical Image Computing and Computer Assisted Intervention (MICCAI)},
  year      = {2025},
  note      = {arXiv:2505.19031}
}"""

_LICENSES = {
    "nih_cxr14": SourceLicense(
        name="NIH ChestX-ray14 (NIH Clinical Center)",
        license="other",
        url="https://nihcc.app.box.com/v/ChestXray-NIHCC",
        citation="""@inproceedings{wang2017chestxray8,
  title     = {ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on
               Weakly-Supervised Classification and Localization of Common Thorax Diseases},
  author    = {Wang, Xiaosong and Peng, Yifan and Lu, Le and Lu, Zhiyong and
               Bagheri, Mohammadhadi and Summers, Ronald M.},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}""",
    ),
    "vqa_rad": SourceLicense(
        name="VQA-RAD (Lau et al.; images from MedPix)",
        license="CC0-1.0",
        url="https://osf.io/89kps/",
        citation="""@article{lau2018vqarad,
  title   = {A dataset of clinically generated visual questions and answers about radiology images},
  author  = {Lau, Jason J. and Gayen, Soumya and Ben Abacha, Asma and Demner-Fushman, Dina},
  journal = {Scientific Data},
  volume  = {5},
  year    = {2018}
}""",
        contamination_warning="VQA-RAD is a public benchmark; records built from its images "
        "must not train a model that is later evaluated on VQA-RAD.",
    ),
    "phantom_series": SourceLicense(name="corpusforge procedural phantoms", license="Apache-2.0"),
    "embedded_dicom": SourceLicense(
        name="DICOM test files of pydicom 3.0.2 and nibabel 5.4.2",
        license="MIT (packages); see pydicom/data/test_files/README.txt for the images",
        url="https://github.com/pydicom/pydicom",
    ),
}


def _listing_digest(digest: Any, root: Path) -> None:
    """Add the relative path and size of every file under `root` to `digest`."""
    for relative, size in catalog_module.source_root_listing(root):
        digest.update(f"{relative}\t{size}\n".encode())


def _sha256_of(metadata_file: Path, image_root: Path | None) -> str:
    """Return the sha256 of a metadata file plus the names and sizes of its image files.

    NOTE: image contents are not hashed, because a full ChestX-ray14 download is
    about 45 GB; a changed image with the same size changes the shard checksums
    but not the source sha256.
    """
    digest = hashlib.sha256(metadata_file.read_bytes())
    if image_root is not None and image_root.is_dir():
        _listing_digest(digest, image_root)
    return digest.hexdigest()


def _check_options(fmt: str, options: dict[str, str], text: str) -> None:
    unknown = sorted(set(options) - set(SOURCE_OPTIONS[fmt]))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} in source {text!r}; {fmt} takes: "
            f"{', '.join(SOURCE_OPTIONS[fmt])}"
        )
    split = options.get("split")
    if split is not None and split not in splits.SPLITS:
        raise ConfigError(
            f"invalid split {split!r} in source {text!r}; use one of {', '.join(splits.SPLITS)}"
        )


class MedMimBuilder(DatasetBuilder):
    name = "med_mim"
    pretty_name = "Med-MIM medical multi-image QA"
    formats = FORMATS
    tags = ("medical", "multi-image", "visual-question-answering", "image-text-to-text")
    license = "other"
    method_citation = _CITATION_MED_MIM
    description = """
Medical multi-image question-answer pairs after Med-MIM (arXiv 2505.19031),
for four abilities: temporal understanding (visits of one patient in follow-up
order), reasoning (a conclusion from several images of a case), comparison
(what differs between two images) and co-reference (a question about the image
at a given position, with the other images as distractors).

- Config `qa`: one question about an ordered set of 2 to 4 images per row.
  `conversation` is one user turn (one `<image>` token per image, then the
  question and, if closed, its options) and one assistant turn (the answer).
  Closed answers read `Letter: option text`; the correct letters are balanced
  per split, ability and number of options.
- `image_ids` are the sha256 of each image's PNG. Images are re-encoded without
  metadata and are embedded in `images`, unless the release stores them once
  in the `images` config (`image_storage=table`).
- Splits: `train`, `heldin` (same sources and generators, other patients and
  images) and `heldout` (images and sources kept out of train). No patient,
  image or near-duplicate picture (pHash) appears in two splits.
- Answers come from source labels and metadata, or, for procedural phantoms,
  from the known drawing, never from a model.
"""

    def default_sources(self) -> list[str]:
        return [
            f"phantom_series:?patients={catalog_module.DEFAULT_PHANTOM_PATIENTS}",
            "embedded_dicom:",
        ]

    def default_options(self) -> dict[str, Any]:
        mix = planner.PAPER_ABILITY_MIX
        return {
            "records": 1430,
            "heldin_records": 200,
            "heldout_records": 120,
            "ability_mix": ",".join(f"{name}:{weight}" for name, weight in mix.items()),
            "closed_share": 0.5,
            "min_images": 2,
            "max_images": 4,
            "heldin_share": 0.15,
            "heldout_share": 0.3,
            "image_storage": "embedded",
            "max_image_side": images.DEFAULT_MAX_IMAGE_SIDE,
            "composer": "template",
        }

    def source_license(self, fmt: str) -> SourceLicense | None:
        return _LICENSES.get(fmt)

    def resolve_source(self, fmt: str, path: str, options: dict[str, str]) -> tuple[str, str, str]:
        text = f"{fmt}:{path}"
        _check_options(fmt, options, text)
        if fmt in ("phantom_series", "embedded_dicom"):
            if path.strip():
                raise ConfigError(f"source {text!r} takes no path: write it as '{fmt}:?key=value'")
            return "", fmt, self._generated_source_sha256(fmt)
        resolved = resolve_path(SourceSpec(text=text, format=fmt, path=path, options=options))
        if fmt == "nih_cxr14":
            file, _ = locate_nih_file(resolved)
            root = Path(options["image_root"]) if options.get("image_root") else file.parent
            name = f"{file.parent.name}/{file.name}"
            return str(resolved), name, _sha256_of(file, root)
        if fmt == "vqa_rad":
            qa_file = resolved / "qa.json"
            if not qa_file.is_file():
                raise SourceError(
                    str(resolved), "no qa.json in the folder", fix="point at the VQA-RAD folder"
                )
            return str(resolved), resolved.name, _sha256_of(qa_file, resolved / "images")
        if resolved.is_dir():
            raise ConfigError(f"source {text!r} is a folder; image_qa takes a CSV or JSONL file")
        root = Path(options["image_root"]) if options.get("image_root") else resolved.parent
        return str(resolved), resolved.name, _sha256_of(resolved, root)

    def _generated_source_sha256(self, fmt: str) -> str:
        """Return the sha256 of what a generated source's images depend on."""
        digest = hashlib.sha256()
        if fmt == "phantom_series":
            from corpusforge.generators.imaging import phantom, phantom_geometry

            for module in (phantom, phantom_geometry, images):
                digest.update(Path(module.__file__).read_bytes())
        else:
            from corpusforge.generators.imaging.embedded import embedded_dicom_files

            for entry in embedded_dicom_files():
                digest.update(entry.name.encode())
                digest.update(entry.path.read_bytes())
        return digest.hexdigest()

    def renderer(
        self, dataset: str, seed: int, sources: list[ResolvedSource], options: dict[str, Any]
    ) -> images.ImageRenderer:
        """Return the image renderer of a build."""
        max_side = options["max_image_side"]
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 32:
            raise ConfigError(f"invalid max_image_side {max_side!r}: use 32 pixels or more")

        def phantom_options(index: int) -> tuple[tuple[int, int], int]:
            return catalog_module.phantom_options(sources[index])

        return images.ImageRenderer(dataset, seed, max_side, phantom_options)

    def plan(self, ctx: PlanContext) -> list[ShardTask]:
        mix = planner.parse_mix_options(ctx.options)
        storage = ctx.options["image_storage"]
        if storage not in IMAGE_STORAGES:
            raise ConfigError(
                f"invalid image_storage {storage!r}; use one of {', '.join(IMAGE_STORAGES)}"
            )
        heldin_share, heldout_share = _shares(ctx.options)
        composer = get_composer(ctx.options["composer"])
        renderer = self.renderer(ctx.dataset, ctx.seed, ctx.sources, ctx.options)
        catalog = catalog_module.build_catalog(
            ctx.dataset, ctx.seed, ctx.sources, ctx.limit, renderer
        )
        formats = [source.format for source in ctx.sources]
        split_of = splits.assign_splits(
            catalog, formats, heldin_share, heldout_share, ctx.dataset, ctx.seed
        )
        items = planner.Planner(catalog, split_of, mix, composer, ctx.dataset, ctx.seed).plan()
        return _shards(items, catalog, mix, storage, ctx.shard_size)

    def generate(self, ctx: ShardContext) -> Iterator[dict[str, Any] | Rejected]:
        renderer = self.renderer(ctx.dataset, ctx.seed, ctx.sources, ctx.options)
        embed = ctx.options["image_storage"] == "embedded"
        label = f"med_mim shard {ctx.shard.index + 1} of {ctx.num_shards}"
        composer = get_composer(ctx.options["composer"], ctx.options.get("llm"), label)
        formats = [source.format for source in ctx.sources]
        revised = revise_items(composer, ctx.shard.units, formats)
        facts: dict[str, ImageFacts] = {}
        for unit in ctx.shard.units:
            if unit["type"] == "facts":
                facts.update(
                    (key, ImageFacts.from_json(value)) for key, value in unit["images"].items()
                )
        renderer.prepare_phantoms(facts.values())
        for unit in ctx.shard.units:
            kind = unit["type"]
            if kind == "facts":
                continue
            elif kind == "rejected":
                yield Rejected(**{key: value for key, value in unit.items() if key != "type"})
            elif kind == "item":
                source = ctx.sources[unit["source"]]
                unit = revised.get(unit["id"], unit)
                if isinstance(unit, Rejected):
                    yield unit
                    continue
                image_facts = [facts[key] for key in unit["keys"]]
                prepared = [renderer.prepare(image) for image in image_facts]
                yield records.qa_row(unit, image_facts, prepared, source.format, source.name, embed)
            elif kind == "image":
                image = facts[unit["key"]]
                yield records.image_row(
                    image, renderer.prepare(image), ctx.sources[image.source].format
                )
            else:
                raise ValueError(f"unknown shard unit type {kind!r} in shard {ctx.shard.index}")

    def card_sections(self, manifest: dict[str, Any], release_dir: Path) -> str:
        return card.card_sections(manifest, release_dir)


def _shares(options: dict[str, Any]) -> tuple[float, float]:
    """Return (heldin_share, heldout_share), both >= 0 with a sum below 1, or raise ConfigError."""
    shares = (options["heldin_share"], options["heldout_share"])
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in shares)
    if not numbers or min(shares) < 0 or sum(shares) >= 1:
        raise ConfigError(
            f"invalid heldin_share {shares[0]!r} or heldout_share {shares[1]!r}: use "
            "numbers of 0 or more whose sum is below 1"
        )
    return float(shares[0]), float(shares[1])


def _facts_unit(catalog: catalog_module.Catalog, keys: set[str]) -> dict[str, Any]:
    return {
        "type": "facts",
        "images": {key: catalog.images[key].to_json() for key in sorted(keys)},
    }


def _shards(
    items: list[planner.PlannedItem],
    catalog: catalog_module.Catalog,
    mix: planner.MixOptions,
    storage: str,
    shard_size: int,
) -> list[ShardTask]:
    """Cut the planned records into shards of `shard_size` per (config, split).

    The first shard also carries the records quarantined while planning. A split
    with a target but no records gets one empty shard, so the card lists it.
    """
    shards: list[ShardTask] = []
    for split in splits.SPLITS:
        split_items = [item for item in items if item.split == split]
        for start in range(0, len(split_items), shard_size):
            chunk = split_items[start : start + shard_size]
            keys = {key for item in chunk for key in item.keys}
            units = [_facts_unit(catalog, keys)] + [item.to_unit() for item in chunk]
            shards.append(ShardTask(len(shards), QA_CONFIG, split, units))
        if not split_items and mix.targets[split] > 0:
            shards.append(ShardTask(len(shards), QA_CONFIG, split, []))
    if storage == "table":
        for split in splits.SPLITS:
            used = sorted({key for item in items if item.split == split for key in item.keys})
            for start in range(0, len(used), shard_size):
                chunk = used[start : start + shard_size]
                units = [_facts_unit(catalog, set(chunk))]
                units += [{"type": "image", "key": key} for key in chunk]
                shards.append(ShardTask(len(shards), IMAGES_CONFIG, split, units))
    if not shards:
        shards.append(ShardTask(0, QA_CONFIG, "train", []))
    rejected = [{"type": "rejected", **_rejected_json(entry)} for entry in catalog.rejected]
    first = shards[0]
    shards[0] = ShardTask(first.index, first.config, first.split, rejected + first.units)
    return shards


def _rejected_json(rejected: Rejected) -> dict[str, Any]:
    return {
        "reason": rejected.reason,
        "source": rejected.source,
        "source_id": rejected.source_id,
        "line": rejected.line,
        "detail": rejected.detail,
        "record": rejected.record,
    }
