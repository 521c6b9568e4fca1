"""Plan an MLLMU-Med release: read sources, make patients, inject, band and shard.

Everything random happens here, once per release, so every shard gets the same
patients, injections and letter offsets. Identities drawn shard by shard would
collide. Plan-time steps:

1. read every source and load or draw every image once, rejecting unreadable
   images and computing each picture's perceptual hash;
2. group near-duplicate pictures (Hamming distance at most
   PHASH_DUPLICATE_THRESHOLD) so one picture never lands on two sides of a split;
3. hold out `real_share` of the knowledge (image groups and text items) as the
   untouched `real` split;
4. make the patients: one per phantom patient, and one per 1 to
   `images_per_patient` image groups of real files; draw their identities;
5. attach text items to patients, pick wrong alternatives for every item and
   corrupt `injection_ratio` of the patients' items;
6. cut the patients (or institutions) into bands and place every patient in the
   letter plan;
7. emit shards per (config, split): the record bands, real, the test bands,
   the ledger, and the `images` config when images are stored apart.

NOTE: each shard carries the full JSON of its patients, and the ledger, test and
images shards repeat them, so plan.json grows to a few KB per patient times up
to four; releases of tens of thousands of patients are the practical limit.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpusforge.generators.base import PlanContext, Rejected, ShardTask
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD, ImageError
from corpusforge.generators.mllmu_med import images, splits
from corpusforge.generators.mllmu_med.formats import (
    classification_counts,
    real_classification_counts,
)
from corpusforge.generators.mllmu_med.injections import wrong_answers
from corpusforge.generators.mllmu_med.patients import PRIVATE_FIELDS, draw_patients
from corpusforge.generators.mllmu_med.sources import (
    ImageEntry,
    QAItem,
    read_sources,
    source_role,
)
from corpusforge.generators.seeding import derive_seed, stable_id

log = logging.getLogger(__name__)

RECORDS = "records"
LEDGER = "ledger"
IMAGES = "images"
LEDGER_SPLIT = "entries"
IMAGES_SPLIT = "images"
IMAGE_STORAGE = ("embedded", "images_config")
FORGET_UNITS = ("patient", "institution")
DEFAULT_PHANTOM_SIZE = 128
DEFAULT_PHANTOM_VISITS = 2
DEFAULT_PHANTOM_QUESTIONS = 3
# Maximum draws of one phantom patient whose pictures keep matching another patient's.
MAX_PHANTOM_ATTEMPTS = 20
DECOY_POOL = 40
ALTERNATIVES = 3


@dataclass(frozen=True)
class Options:
    """The dataset options of a release, checked."""

    injection_ratio: float
    real_share: float
    image_storage: str
    max_image_side: int
    images_per_patient: int
    forget_unit: str
    institutions: int
    text_backend: str

    @classmethod
    def parse(cls, options: dict[str, Any]) -> Options:
        def number(name: str, low: float, high: float) -> float:
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"invalid {name} {value!r}: use a number from {low} to {high}")
            if not low <= value <= high:
                raise ConfigError(f"invalid {name} {value!r}: use a number from {low} to {high}")
            return value

        def choice(name: str, allowed: tuple[str, ...]) -> str:
            value = options[name]
            if value not in allowed:
                raise ConfigError(f"invalid {name} {value!r}; use one of {', '.join(allowed)}")
            return value

        from corpusforge.generators.mllmu_med.text import get_backend

        get_backend(options["text_backend"])
        return cls(
            injection_ratio=float(number("injection_ratio", 0, 1)),
            real_share=float(number("real_share", 0, 0.9)),
            image_storage=choice("image_storage", IMAGE_STORAGE),
            max_image_side=int(number("max_image_side", 0, 8192)),
            images_per_patient=int(number("images_per_patient", 1, 64)),
            forget_unit=choice("forget_unit", FORGET_UNITS),
            institutions=int(number("institutions", 0, 1000)),
            text_backend=options["text_backend"],
        )


def _rejected_json(rejected: Rejected) -> dict[str, Any]:
    return asdict(rejected)


def _int_option(source, name: str, default: int, low: int, high: int) -> int:
    text = source.options.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError as error:
        raise ConfigError(
            f"invalid {name} {text!r} in source {source.spec!r}: use an integer"
        ) from error
    if not low <= value <= high:
        raise ConfigError(f"invalid {name} {value} in source {source.spec!r}: use {low} to {high}")
    return value


class _PhashIndex:
    """Perceptual hashes of the pictures kept so far, with their owner, for near-match lookups."""

    def __init__(self) -> None:
        self.hashes: list[int] = []
        self.owners: list[str] = []
        self._array = np.zeros(0, dtype=np.uint64)

    def matches(self, value: int, exclude_owner: str | None = None) -> list[str]:
        if len(self._array) != len(self.hashes):
            self._array = np.array(self.hashes, dtype=np.uint64)
        if not len(self._array):
            return []
        distance = np.bitwise_count(self._array ^ np.uint64(value))
        close = np.flatnonzero(distance <= PHASH_DUPLICATE_THRESHOLD)
        return [self.owners[i] for i in close if self.owners[i] != exclude_owner]

    def add(self, value: int, owner: str) -> None:
        self.hashes.append(value)
        self.owners.append(owner)


@dataclass
class _Picture:
    """One loaded real image: its entry, plan-time phash and role."""

    entry: ImageEntry
    phash: int
    role: str
    descriptor: str
    region: str


class Planner:
    """Builds the shard tasks of one release from a PlanContext."""

    def __init__(self, ctx: PlanContext) -> None:
        self.ctx = ctx
        self.dataset = ctx.dataset
        self.seed = ctx.seed
        self.options = Options.parse(ctx.options)
        self.rejected: list[Rejected] = []

    def rng(self, *purpose: object) -> random.Random:
        return random.Random(derive_seed(self.dataset, self.seed, *purpose))

    # Images ------------------------------------------------------------------------

    def _load_pictures(self, entries: list[ImageEntry]) -> list[_Picture]:
        pictures = []
        for entry in entries:
            source = self.ctx.sources[entry.source]
            try:
                loaded = images.image_io.load_image(Path(entry.path))
            except ImageError as error:
                for item in entry.items:
                    self.rejected.append(
                        Rejected(
                            reason=error.reason,
                            source=entry.format,
                            source_id=item.source_id,
                            line=item.metadata.get("line"),
                            detail=str(error),
                            record={"image": entry.display, "question": item.question},
                        )
                    )
                continue
            picture = images.downscale(loaded.image, self.options.max_image_side)
            if entry.format == "embedded_dicom":
                entry.items = images.dicom_items(loaded.metadata, entry.display)
                modality = images.DICOM_MODALITIES.get(str(loaded.metadata.get("modality")))
                descriptor = f"{modality or 'medical'} image"
                region = "chest"
            else:
                organ = str(entry.items[0].metadata.get("image_organ", "")).upper()
                region = images.VQA_RAD_ORGANS.get(organ, "chest")
                descriptor = f"{region} radiology image" if organ else "radiology image"
            if not entry.items:
                continue
            pictures.append(
                _Picture(
                    entry,
                    images.image_io.phash(picture),
                    source_role(source),
                    descriptor,
                    region,
                )
            )
        return pictures

    def _embedded_entries(self) -> list[ImageEntry]:
        from corpusforge.generators.imaging.embedded import embedded_dicom_files

        entries = []
        for index, source in enumerate(self.ctx.sources):
            if source.format != "embedded_dicom":
                continue
            files = [file for file in embedded_dicom_files() if not file.placeholder_pixels]
            if self.ctx.limit is not None:
                files = files[: self.ctx.limit]
            for file in files:
                entries.append(ImageEntry(index, "embedded_dicom", file.name, str(file.path), []))
        return entries

    def _group_pictures(self, pictures: list[_Picture]) -> list[list[_Picture]]:
        """Group pictures whose perceptual hashes are within the duplicate threshold."""
        parent = list(range(len(pictures)))

        def root(index: int) -> int:
            while parent[index] != index:
                parent[index] = parent[parent[index]]
                index = parent[index]
            return index

        hashes = np.array([picture.phash for picture in pictures], dtype=np.uint64)
        for index, picture in enumerate(pictures):
            distance = np.bitwise_count(hashes[:index] ^ np.uint64(picture.phash))
            for other in np.flatnonzero(distance <= PHASH_DUPLICATE_THRESHOLD):
                parent[root(int(other))] = root(index)
        groups: dict[int, list[_Picture]] = {}
        for index, picture in enumerate(pictures):
            groups.setdefault(root(index), []).append(picture)
        result = []
        for members in groups.values():
            role = members[0].role
            kept = []
            for member in members:
                if member.role != role and "auto" not in (member.role, role):
                    for item in member.entry.items:
                        self.rejected.append(
                            Rejected(
                                reason="duplicate_image",
                                source=member.entry.format,
                                source_id=item.source_id,
                                line=item.metadata.get("line"),
                                detail=(
                                    f"image {member.entry.display} shows the same picture as "
                                    f"{members[0].entry.display}, which has role {role}"
                                ),
                                record={"image": member.entry.display, "question": item.question},
                            )
                        )
                else:
                    kept.append(member)
            result.append(kept)
        return result

    # Main --------------------------------------------------------------------------

    def plan(self) -> list[ShardTask]:
        contents = read_sources(self.ctx.sources, self.ctx.limit)
        self.rejected.extend(contents.rejected)
        pictures = self._load_pictures(contents.images + self._embedded_entries())
        groups = self._group_pictures(pictures)

        real_groups, patient_groups = self._split_roles(
            groups, [self._group_role(group) for group in groups], "image_groups"
        )
        text_roles = [source_role(self.ctx.sources[index]) for index, _ in contents.text_items]
        real_text, patient_text = self._split_roles(
            [item for _, item in contents.text_items], text_roles, "text_items"
        )

        phash_index = _PhashIndex()
        for number, group in enumerate(real_groups):
            for picture in group:
                phash_index.add(picture.phash, f"real:{number}")
        patient_studies = self._file_patients(patient_groups, phash_index)
        patient_studies += self._phantom_patients(contents.phantom_patients, phash_index)
        if not patient_studies:
            raise ConfigError(
                "the sources give no patient images: add a phantom, vqa_rad or image_qa source "
                "(sources with role=real only feed the real split)"
            )

        regions = [studies[0]["region"] for studies in patient_studies]
        institutions, patients, decoys = draw_patients(
            self.dataset,
            self.seed,
            self.ctx.reference_date,
            regions,
            self.options.institutions or None,
            decoys=DECOY_POOL,
        )
        collided = sum(1 for patient in patients if patient.collisions)
        log.info(
            "drew %d patients at %d institutions (%d with redrawn values) and %d decoys",
            len(patients),
            len(institutions),
            collided,
            len(decoys),
        )
        units = self._patient_units(patients, patient_studies, decoys)
        self._attach_text(units, patient_text)

        real_entries = self._real_entries(real_groups, real_text)
        all_items = [item for unit in units for item in self._unit_items(unit)]
        all_items += [entry["item"] for entry in real_entries]
        self._choose_alternatives(all_items)
        self._drop_items_without_alternatives(units, real_entries)
        self._corrupt(units)
        self._assign_bands(units)
        self._finish_studies(units)
        return self._shards(units, real_entries)

    def _group_role(self, group: list[_Picture]) -> str:
        roles = {picture.role for picture in group}
        for role in ("real", "patients"):
            if role in roles:
                return role
        return "auto"

    def _split_roles(self, things: list, roles: list[str], purpose: str) -> tuple[list, list]:
        """Split things into (real, patients) by role; `auto` ones by `real_share`."""
        real = [thing for thing, role in zip(things, roles, strict=True) if role == "real"]
        patients = [thing for thing, role in zip(things, roles, strict=True) if role == "patients"]
        auto = [thing for thing, role in zip(things, roles, strict=True) if role == "auto"]
        order = list(range(len(auto)))
        self.rng("real_share", purpose).shuffle(order)
        held_out = round(len(auto) * self.options.real_share)
        real += [auto[i] for i in sorted(order[:held_out])]
        patients += [auto[i] for i in sorted(order[held_out:])]
        return real, patients

    def _file_patients(
        self, groups: list[list[_Picture]], phash_index: _PhashIndex
    ) -> list[list[dict[str, Any]]]:
        """Give each patient 1 to images_per_patient groups of real pictures, as studies."""
        order = list(range(len(groups)))
        rng = self.rng("file_patients")
        rng.shuffle(order)
        patients = []
        position = 0
        while position < len(order):
            take = rng.randint(1, self.options.images_per_patient)
            chosen = [groups[i] for i in order[position : position + take]]
            position += take
            owner = f"file-patient:{len(patients)}"
            studies = []
            for group in chosen:
                for picture in group:
                    phash_index.add(picture.phash, owner)
                    entry = picture.entry
                    studies.append(
                        {
                            "key": f"{entry.source}:{entry.display}",
                            "image": {"kind": "file", "path": entry.path, "display": entry.display},
                            "phash": f"{picture.phash:016x}",
                            "descriptor": picture.descriptor,
                            "region": picture.region,
                            "items": [item.to_json() for item in entry.items],
                        }
                    )
            patients.append(studies)
        return patients

    def _phantom_patients(
        self, wanted: list[tuple[int, int]], phash_index: _PhashIndex
    ) -> list[list[dict[str, Any]]]:
        """Draw each phantom patient's series, redrawing one that looks like someone else."""
        patients = []
        for source_index, number in wanted:
            source = self.ctx.sources[source_index]
            max_visits = _int_option(source, "visits", DEFAULT_PHANTOM_VISITS, 1, 12)
            questions = _int_option(source, "questions", DEFAULT_PHANTOM_QUESTIONS, 1, 7)
            size = _int_option(source, "size", DEFAULT_PHANTOM_SIZE, 32, 1024)
            visits = self.rng("phantom_visits", source_index, number).randint(1, max_visits)
            owner = f"phantom:{source_index}:{number}"
            for attempt in range(MAX_PHANTOM_ATTEMPTS):
                series = images.phantom_series(
                    self.dataset, self.seed, source_index, number, attempt, visits
                )
                hashes = [
                    images.image_io.phash(images.phantom.draw_phantom(spec, size))
                    for spec in series
                ]
                if not any(phash_index.matches(value, owner) for value in hashes):
                    break
                log.info("phantom patient %s looked like another picture; drawing again", owner)
            else:
                raise ConfigError(
                    f"phantom patient {number} of source {source.spec!r} looked like another "
                    f"patient's picture in {MAX_PHANTOM_ATTEMPTS} draws; use fewer patients"
                )
            studies = []
            for visit, (spec, value) in enumerate(zip(series, hashes, strict=True)):
                phash_index.add(value, owner)
                key = f"{source_index}:{number}:{visit}"
                rng = self.rng("phantom_items", key)
                items = images.phantom_items(spec, key, questions, rng)
                modality = images.PHANTOM_MODALITIES[spec.modality]
                studies.append(
                    {
                        "key": f"phantom:{key}",
                        "image": {
                            "kind": "phantom",
                            "source": source_index,
                            "number": number,
                            "attempt": attempt,
                            "visits": visits,
                            "visit": visit,
                            "size": size,
                        },
                        "phash": f"{value:016x}",
                        "descriptor": f"{spec.region} {modality}",
                        "region": spec.region,
                        "items": [item.to_json() for item in items],
                    }
                )
            patients.append(studies)
        return patients

    def _patient_units(self, patients, patient_studies, decoys) -> list[dict[str, Any]]:
        reference = dt.date.fromisoformat(self.ctx.reference_date)
        units = []
        for patient, studies in zip(patients, patient_studies, strict=True):
            rng = self.rng("visits", patient.patient_id)
            day = reference - dt.timedelta(days=rng.randrange(1, 365))
            dates = []
            for _ in studies:
                dates.append(day)
                day -= dt.timedelta(days=rng.randrange(30, 181))
            for study, date in zip(studies, reversed(dates), strict=True):
                study["study_id"] = (
                    f"st-{stable_id(self.dataset, self.seed, study['key'], length=12)}"
                )
                study["date"] = date.isoformat()
            pick = self.rng("decoys", patient.patient_id)
            unit_decoys = {
                name: [identity.values[name] for identity in pick.sample(decoys, ALTERNATIVES)]
                for name in PRIVATE_FIELDS
            }
            units.append(
                {
                    "patient": patient.to_json(),
                    "band": "",
                    "studies": studies,
                    "text_items": [],
                    "decoys": unit_decoys,
                }
            )
        return units

    def _attach_text(self, units: list[dict[str, Any]], items: list[QAItem]) -> None:
        order = list(range(len(units)))
        self.rng("text_owners").shuffle(order)
        for position, item in enumerate(items):
            units[order[position % len(order)]]["text_items"].append(item.to_json())

    def _real_entries(self, groups: list[list[_Picture]], items: list[QAItem]) -> list[dict]:
        entries = []
        for group in groups:
            for picture in group:
                entry = picture.entry
                key = stable_id(self.dataset, self.seed, entry.source, entry.display, length=12)
                study = {
                    "study_id": f"st-{key}",
                    "date": None,
                    "image": {"kind": "file", "path": entry.path, "display": entry.display},
                    "phash": f"{picture.phash:016x}",
                    "descriptor": picture.descriptor,
                    "region": picture.region,
                    "items": [],
                    "flip": "forbidden",
                }
                for item in entry.items:
                    entries.append({"item": item.to_json(), "study": study})
        entries.extend({"item": item.to_json(), "study": None} for item in items)
        return entries

    @staticmethod
    def _unit_items(unit: dict[str, Any]) -> list[dict[str, Any]]:
        items = [item for study in unit["studies"] for item in study["items"]]
        return items + unit["text_items"]

    def _choose_alternatives(self, items: list[dict[str, Any]]) -> None:
        """Fill every item's alternatives: plausible wrong answers of its kind."""
        by_group: dict[str, set[str]] = {}
        by_source: dict[str, set[str]] = {}
        for item in items:
            by_group.setdefault(item["group"], set()).add(item["answer"])
            if item["kind"] == "open":
                by_source.setdefault(item["source"], set()).add(item["answer"])
        for item in items:
            pool = sorted(by_group.get(item["group"], set()))
            answers = wrong_answers(
                item["answer"],
                item["kind"],
                self.rng("alternatives", item["item_id"]),
                count=ALTERNATIVES,
                options=item["options"],
                alternatives=item["fact_alternatives"],
                pool=pool,
            )
            if len(answers) < ALTERNATIVES and item["kind"] == "open":
                wider = sorted(by_source.get(item["source"], set()) - set(pool))
                answers = wrong_answers(
                    item["answer"],
                    item["kind"],
                    self.rng("alternatives", item["item_id"]),
                    count=ALTERNATIVES,
                    pool=pool + wider,
                )
            item["alternatives"] = answers

    def _drop_items_without_alternatives(self, units, real_entries) -> None:
        def keep(item: dict[str, Any]) -> bool:
            if len(item["alternatives"]) >= ALTERNATIVES:
                return True
            self.rejected.append(
                Rejected(
                    reason="no_distractors",
                    source=item["source"],
                    source_id=item["source_id"],
                    line=item["metadata"].get("line"),
                    detail=(
                        f"found {len(item['alternatives'])} plausible wrong answers for "
                        f"{item['answer']!r}; classification needs {ALTERNATIVES}"
                    ),
                    record={"question": item["question"], "answer": item["answer"]},
                )
            )
            return False

        for unit in units:
            for study in unit["studies"]:
                study["items"] = [item for item in study["items"] if keep(item)]
            unit["text_items"] = [item for item in unit["text_items"] if keep(item)]
        real_entries[:] = [entry for entry in real_entries if keep(entry["item"])]

    def _corrupt(self, units: list[dict[str, Any]]) -> None:
        """Corrupt exactly round(injection_ratio x n) of the patients' items."""
        items = sorted(
            (item for unit in units for item in self._unit_items(unit)),
            key=lambda item: item["item_id"],
        )
        count = round(len(items) * self.options.injection_ratio)
        for item in self.rng("corruption").sample(items, count):
            item["corrupted"] = True
        log.info("corrupted %d of %d patient items", count, len(items))

    def _assign_bands(self, units: list[dict[str, Any]]) -> None:
        if self.options.forget_unit == "patient":
            codes = splits.assign_bands([1] * len(units), self.seed, self.dataset)
            for unit, code in zip(units, codes, strict=True):
                unit["band"] = code
            return
        by_institution: dict[str, list[dict[str, Any]]] = {}
        for unit in units:
            by_institution.setdefault(unit["patient"]["institution_id"], []).append(unit)
        keys = sorted(by_institution)
        codes = splits.assign_bands(
            [len(by_institution[key]) for key in keys], self.seed, self.dataset
        )
        for key, code in zip(keys, codes, strict=True):
            for unit in by_institution[key]:
                unit["band"] = code

    def _finish_studies(self, units: list[dict[str, Any]]) -> None:
        """Set each study's flip policy, and plan the test views of forget patients."""
        forget = {band.code for band in splits.FORGET_BANDS}
        for unit in units:
            for study in unit["studies"]:
                items = [QAItem.from_json(item) for item in study["items"]]
                study["flip"] = images.flip_policy(study["image"]["kind"], items)
                if unit["band"] in forget:
                    study["test_transform"] = images.planned_transform(
                        self.dataset, self.seed, study["study_id"], study["flip"]
                    )

    # Shards ------------------------------------------------------------------------

    def _shards(self, units: list[dict[str, Any]], real_entries: list[dict]) -> list[ShardTask]:
        size = self.ctx.shard_size
        by_band = {band.code: [u for u in units if u["band"] == band.code] for band in splits.BANDS}
        offsets = {"image_text": 0, "text_only": 0}
        for band in splits.BANDS:
            for unit in by_band[band.code]:
                unit["letters"] = dict(offsets)
                for modality, count in classification_counts(unit).items():
                    offsets[modality] += count
        offsets = {"image_text": 0, "text_only": 0}
        for band in splits.FORGET_BANDS:
            for unit in by_band[band.code]:
                unit["test_letters"] = dict(offsets)
                for modality, count in classification_counts(unit).items():
                    offsets[modality] += count
        offsets = {"image_text": 0, "text_only": 0}
        for entry in real_entries:
            entry["letters"] = dict(offsets)
            for modality, count in real_classification_counts([entry]).items():
                offsets[modality] += count

        def chunks(things: list) -> list[list]:
            return [things[start : start + size] for start in range(0, len(things), size)] or [[]]

        tasks: list[tuple[str, str, list]] = []
        for band in splits.BANDS:
            tasks += [(RECORDS, band.split, chunk) for chunk in chunks(by_band[band.code])]
        tasks += [(RECORDS, splits.REAL_SPLIT, chunk) for chunk in chunks(real_entries)]
        for band in splits.FORGET_BANDS:
            tasks += [(RECORDS, band.test_split, chunk) for chunk in chunks(by_band[band.code])]
        # The ledger has one split, so its shards cut the band-ordered patients only by size.
        ordered = [unit for band in splits.BANDS for unit in by_band[band.code]]
        tasks += [(LEDGER, LEDGER_SPLIT, chunk) for chunk in chunks(ordered)]
        if self.options.image_storage == "images_config":
            with_images = [entry for entry in real_entries if entry["study"]]
            tasks += [(IMAGES, IMAGES_SPLIT, chunk) for chunk in chunks(ordered + with_images)]

        shards = [
            ShardTask(index, config, split, list(chunk))
            for index, (config, split, chunk) in enumerate(tasks)
        ]
        if self.rejected:
            quarantine = {"quarantine": [_rejected_json(item) for item in self.rejected]}
            shards[0] = ShardTask(
                0, shards[0].config, shards[0].split, [*shards[0].units, quarantine]
            )
        log.info(
            "planned %d patients (%s), %d real entries, %d rejected, %d shards",
            len(units),
            ", ".join(f"{code} {len(members)}" for code, members in by_band.items()),
            len(real_entries),
            len(self.rejected),
            len(shards),
        )
        return shards


def plan_release(ctx: PlanContext) -> list[ShardTask]:
    """Return the shard tasks of an MLLMU-Med release."""
    return Planner(ctx).plan()
