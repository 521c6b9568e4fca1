"""Read every source of a build into one catalog of images, series and composed pools.

The catalog is made once, when the run is planned. Every image is decoded (or
drawn) here, so missing, corrupt and oversized images are quarantined before
any shard runs, and every image has the perceptual hash that the split uses.

- A series is the visits of one patient in follow-up order (nih_cxr14,
  phantom_series); it feeds all four abilities.
- A pool is the single images of one source: vqa_rad, image_qa,
  embedded_dicom, and the phantom images of all patients. The composed branch
  draws image sets from it for co-reference, reasoning and comparison.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from corpusforge.generators.base import Rejected, ResolvedSource
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.imaging.embedded import embedded_dicom_files
from corpusforge.generators.imaging.io import ImageError, load_image, safe_join
from corpusforge.generators.imaging.phantom import facts as phantom_facts
from corpusforge.generators.med_mim.coreference import normalize_answer, normalize_question
from corpusforge.generators.med_mim.facts import ImageFacts, QAPair
from corpusforge.generators.med_mim.findings import phantom_findings
from corpusforge.generators.med_mim.images import DEFAULT_PHANTOM_SIZE, ImageRenderer
from corpusforge.generators.med_mim.sources import read_nih

log = logging.getLogger(__name__)

DEFAULT_PHANTOM_PATIENTS = 100
DEFAULT_PHANTOM_VISITS = (2, 5)

MODALITY_NAMES = {
    "xray": "X-ray",
    "ct": "CT",
    "mri": "MRI",
    "CT": "CT",
    "MR": "MRI",
    "CR": "X-ray",
    "DX": "X-ray",
    "XR": "X-ray",
    "NM": "nuclear medicine",
    "US": "ultrasound",
    "PT": "PET",
}
REGION_NAMES = {
    "CHEST": "chest",
    "THORAX": "chest",
    "LUNG": "chest",
    "HEAD": "head",
    "BRAIN": "head",
    "SKULL": "head",
    "ABD": "abdomen",
    "ABDOMEN": "abdomen",
    "LIVER": "abdomen",
    "KIDNEY": "abdomen",
}
# Metadata columns of an image_qa manifest that may name the body region or modality.
REGION_FIELDS = ("region", "image_organ", "organ", "body_part")
MODALITY_FIELDS = ("modality",)


@dataclass
class Catalog:
    """Images of a build by key, their perceptual hashes, series, pools and quarantined records.

    `series` lists (source index, image keys in follow-up order); `pools` maps a
    source index to its image keys. `forced_splits` maps a source index to the
    split its `split` option (or its format's default) forces.
    """

    images: dict[str, ImageFacts] = field(default_factory=dict)
    phashes: dict[str, int] = field(default_factory=dict)
    series: list[tuple[int, list[str]]] = field(default_factory=list)
    pools: dict[int, list[str]] = field(default_factory=dict)
    forced_splits: dict[int, str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


def phantom_options(source: ResolvedSource) -> tuple[tuple[int, int], int]:
    """Return (visits range, image size) of a phantom_series source."""
    visits = source.options.get(
        "visits", f"{DEFAULT_PHANTOM_VISITS[0]}-{DEFAULT_PHANTOM_VISITS[1]}"
    )
    low, _, high = visits.partition("-")
    try:
        bounds = (int(low), int(high or low))
        size = int(source.options.get("size", DEFAULT_PHANTOM_SIZE))
    except ValueError as error:
        raise ConfigError(
            f"invalid visits or size in source {source.spec!r}: use visits=2-5 and size=192"
        ) from error
    if not 2 <= bounds[0] <= bounds[1] <= 8:
        raise ConfigError(
            f"invalid visits {visits!r} in source {source.spec!r}: use a range within 2-8, "
            "because a series needs two visits and questions name at most eight"
        )
    return bounds, size


def _reject_image(
    error: ImageError, fmt: str, source_id: str, line: int | None, record
) -> Rejected:
    return Rejected(
        reason=error.reason,
        source=fmt,
        source_id=source_id,
        line=line,
        detail=str(error),
        record=record,
    )


class CatalogBuilder:
    """Fill a Catalog from the resolved sources, one source at a time."""

    def __init__(
        self,
        dataset: str,
        seed: int,
        sources: list[ResolvedSource],
        limit: int | None,
        renderer: ImageRenderer,
    ) -> None:
        self.dataset = dataset
        self.seed = seed
        self.sources = sources
        self.limit = limit
        self.renderer = renderer
        self.catalog = Catalog()
        self._by_sha256: dict[str, str] = {}
        self._sha256_of: dict[str, str] = {}

    def build(self) -> Catalog:
        readers = {
            "nih_cxr14": self._read_nih,
            "phantom_series": self._read_phantoms,
            "vqa_rad": self._read_image_qa,
            "image_qa": self._read_image_qa,
            "embedded_dicom": self._read_dicom,
        }
        for index, source in enumerate(self.sources):
            if source.options.get("split"):
                self.catalog.forced_splits[index] = source.options["split"]
            elif source.format == "embedded_dicom":
                self.catalog.forced_splits[index] = "heldout"
            before = len(self.catalog.images)
            readers[source.format](index, source)
            log.info(
                "catalog: %s %s gave %d images",
                source.format,
                source.name,
                len(self.catalog.images) - before,
            )
        return self.catalog

    def _add(
        self, facts: ImageFacts, records: list[tuple[str, int | None, dict[str, Any]]]
    ) -> bool:
        """Decode and store an image; quarantine its source records when it is unusable.

        `records` lists (source id, line, record) of every source record that
        uses the image. An image whose PNG equals an earlier image's is
        quarantined as `duplicate_image`, so each image id is one catalog image.
        """
        fmt = self.sources[facts.source].format
        try:
            prepared = self.renderer.prepare(facts)
        except ImageError as error:
            for source_id, line, record in records:
                self.catalog.rejected.append(_reject_image(error, fmt, source_id, line, record))
            return False
        first = self._by_sha256.get(prepared.sha256)
        if first is not None:
            for source_id, line, record in records:
                self.catalog.rejected.append(
                    Rejected(
                        reason="duplicate_image",
                        source=fmt,
                        source_id=source_id,
                        line=line,
                        detail=f"{facts.source_image} has the same pixels as {first}",
                        record=record,
                    )
                )
            return False
        self._by_sha256[prepared.sha256] = facts.source_image
        self._sha256_of[facts.key] = prepared.sha256
        self.catalog.phashes[facts.key] = prepared.phash
        self.catalog.images[facts.key] = facts
        return True

    def _read_nih(self, index: int, source: ResolvedSource) -> None:
        nih = read_nih(source.path, dict(source.options), self.limit)
        self.catalog.rejected.extend(nih.rejected)
        for patient in nih.patients:
            usable: list[ImageFacts] = []
            for visit in patient.visits:
                try:
                    path = safe_join(nih.image_root, visit.relative_path)
                except ImageError as error:
                    self.catalog.rejected.append(
                        _reject_image(error, source.format, visit.image, visit.line, visit.row)
                    )
                    continue
                facts = ImageFacts(
                    key=f"{index}:{visit.relative_path}",
                    source=index,
                    source_format=source.format,
                    locator={"kind": "file", "path": str(path)},
                    patient=f"{source.format}:{patient.patient_id}",
                    source_image=visit.relative_path,
                    follow_up=visit.follow_up,
                    age=visit.age,
                    sex=visit.sex,
                    view=visit.view,
                    modality="X-ray",
                    region="chest",
                    plane="frontal",
                    findings=visit.findings,
                )
                if self._add(facts, [(visit.image, visit.line, visit.row)]):
                    usable.append(facts)
            self._add_series(index, source, patient.patient_id, usable)

    def _add_series(
        self, index: int, source: ResolvedSource, patient_id: str, visits: list[ImageFacts]
    ) -> list[str]:
        """Store a patient's usable visits as a series and return their keys.

        A patient with fewer than two usable visits is quarantined as `single_visit`.
        """
        if len(visits) < 2:
            for facts in visits:
                del self.catalog.images[facts.key]
                del self.catalog.phashes[facts.key]
                # A later copy of this image is no longer a duplicate of a kept image.
                del self._by_sha256[self._sha256_of.pop(facts.key)]
            if visits:
                self.catalog.rejected.append(
                    Rejected(
                        reason="single_visit",
                        source=source.format,
                        source_id=str(patient_id),
                        line=None,
                        detail=(
                            f"patient {patient_id} has one usable visit "
                            f"({visits[0].source_image}), so it forms no series"
                        ),
                        record={"patient_id": patient_id, "image": visits[0].source_image},
                    )
                )
            return []
        numbered = [replace(facts, visit=number) for number, facts in enumerate(visits, 1)]
        for facts in numbered:
            self.catalog.images[facts.key] = facts
        keys = [facts.key for facts in numbered]
        self.catalog.series.append((index, keys))
        return keys

    def _read_phantoms(self, index: int, source: ResolvedSource) -> None:
        try:
            count = int(source.options.get("patients", DEFAULT_PHANTOM_PATIENTS))
        except ValueError as error:
            raise ConfigError(
                f"invalid patients in source {source.spec!r}: use a positive integer"
            ) from error
        if count < 1:
            raise ConfigError(f"invalid patients {count} in source {source.spec!r}: use 1 or more")
        if self.limit is not None:
            count = min(count, self.limit)
        pool = []
        for number in range(count):
            patient = self.renderer.patient(index, number)
            visits = []
            for visit, spec in enumerate(patient.specs):
                drawn = phantom_facts(spec)
                facts = ImageFacts(
                    key=f"{index}:phantom/{number}/{visit}",
                    source=index,
                    source_format=source.format,
                    locator={"kind": "phantom", "patient": number, "visit": visit},
                    patient=f"{source.format}:{index}:{number}",
                    source_image=f"phantom/{number}/{visit}",
                    follow_up=patient.follow_ups[visit],
                    age=patient.ages[visit],
                    sex=patient.sex,
                    modality=MODALITY_NAMES[spec.modality],
                    region=spec.region,
                    plane=spec.plane,
                    findings=phantom_findings(drawn["lesion_sides"], spec.plane),
                    lesion_count=drawn["lesion_count"],
                    largest_lesion_mm=drawn["largest_lesion_mm"],
                )
                record = {"patient": number, "visit": visit}
                if self._add(facts, [(facts.source_image, None, record)]):
                    visits.append(facts)
            pool.extend(self._add_series(index, source, str(number), visits))
        self.catalog.pools[index] = pool

    def _read_dicom(self, index: int, source: ResolvedSource) -> None:
        include_placeholder = source.options.get("include_placeholder", "0") in ("1", "true")
        pool = []
        files = embedded_dicom_files()
        for entry in files[: self.limit] if self.limit else files:
            record = {"name": entry.name, "series": entry.series}
            if entry.placeholder_pixels and not include_placeholder:
                self.catalog.rejected.append(
                    Rejected(
                        reason="placeholder_pixels",
                        source=source.format,
                        source_id=entry.name,
                        line=None,
                        detail=(
                            f"{entry.path.name} has a real header but synthetic pixels, so its "
                            "picture cannot answer questions; set include_placeholder=1 to use it"
                        ),
                        record=record,
                    )
                )
                continue
            try:
                loaded = load_image(entry.path)
            except ImageError as error:
                self.catalog.rejected.append(
                    _reject_image(error, source.format, entry.name, None, record)
                )
                continue
            # The pixels are decoded again by the renderer; the files are small.
            metadata = loaded.metadata
            modality = str(metadata.get("modality") or "").upper()
            body_part = str(metadata.get("body_part") or "").upper()
            facts = ImageFacts(
                key=f"{index}:dicom/{entry.name}",
                source=index,
                source_format=source.format,
                locator={"kind": "dicom", "name": entry.name},
                patient=f"{source.format}:{entry.series}",
                source_image=f"{entry.name}.dcm",
                modality=MODALITY_NAMES.get(modality, modality or None),
                region=REGION_NAMES.get(body_part),
                plane=metadata.get("plane") or None,
            )
            if self._add(facts, [(entry.name, None, record)]):
                pool.append(facts.key)
        self.catalog.pools[index] = pool

    def _read_image_qa(self, index: int, source: ResolvedSource) -> None:
        if source.format == "vqa_rad":
            from corpusforge.generators.imaging.vqa_rad import iter_vqa_rad

            records = iter_vqa_rad(source.path, dict(source.options))
        else:
            from corpusforge.generators.imaging.manifest import iter_image_qa_manifest

            records = iter_image_qa_manifest(source.path, dict(source.options))
        by_image = self._group_qa(source, _limited(records, self.limit))
        pool = []
        for image, entries in sorted(by_image.items()):
            first = entries[0]
            record = {"image": image, "qids": [entry.qid for entry in entries]}
            if first.image_path is None:
                if image.strip():
                    error = ImageError("path_escapes_root", image, "the path leaves the image root")
                else:
                    error = ImageError("missing_image", image, "the record names no image")
                for entry in entries:
                    self.catalog.rejected.append(
                        _reject_image(error, source.format, entry.qid, entry.line, record)
                    )
                continue
            pairs, accepted = self._consistent_pairs(source, entries)
            metadata = first.metadata
            region = _first_value(metadata, REGION_FIELDS)
            modality = _first_value(metadata, MODALITY_FIELDS)
            facts = ImageFacts(
                key=f"{index}:{image}",
                source=index,
                source_format=source.format,
                locator={"kind": "file", "path": str(first.image_path)},
                patient=f"{source.format}:{image}",
                source_image=image,
                region=REGION_NAMES.get(region.upper(), region.lower()) if region else None,
                modality=MODALITY_NAMES.get(modality.upper(), modality) if modality else None,
                qa=tuple(pairs),
            )
            # Records already quarantined above are not quarantined again if the image fails.
            uses = [(entry.qid, entry.line, record) for entry in accepted]
            if self._add(facts, uses):
                pool.append(facts.key)
        self.catalog.pools[index] = pool

    def _group_qa(self, source: ResolvedSource, records: Iterable[Any]) -> dict[str, list[Any]]:
        """Group QA records by image and quarantine repeated question ids."""
        by_image: dict[str, list[Any]] = defaultdict(list)
        seen: set[str] = set()
        for record in records:
            if record.qid in seen:
                self.catalog.rejected.append(
                    Rejected(
                        reason="duplicate_id",
                        source=source.format,
                        source_id=record.qid,
                        line=record.line,
                        detail=f"question id {record.qid!r} appeared earlier in {source.name}",
                        record={"image": record.image, "question": record.question},
                    )
                )
                continue
            seen.add(record.qid)
            by_image[record.image].append(record)
        return by_image

    def _consistent_pairs(
        self, source: ResolvedSource, entries: list[Any]
    ) -> tuple[list[QAPair], list[Any]]:
        """Return one QA pair per distinct question, and the entries that were not quarantined.

        An entry with an empty or null question or answer is quarantined as
        `missing_field` first, so it never makes a valid copy of its question
        look conflicting. Then every entry of a question with different answers
        is quarantined as `conflicting_answers`. Paraphrased and template
        copies of a question with the same answer are kept once, because a
        position question built from each would repeat.
        """
        complete = []
        for entry in entries:
            empty = [
                name
                for name, value in (("question", entry.question), ("answer", entry.answer))
                if not value.strip()
            ]
            if empty:
                self.catalog.rejected.append(
                    Rejected(
                        reason="missing_field",
                        source=source.format,
                        source_id=entry.qid,
                        line=entry.line,
                        detail=f"the {' and '.join(empty)} is missing or empty",
                        record={"image": entry.image, "question": entry.question},
                    )
                )
            else:
                complete.append(entry)

        answers: dict[str, set[str]] = defaultdict(set)
        for entry in complete:
            question = normalize_question(entry.question).lower()
            answers[question].add(normalize_answer(entry.answer).lower())
        pairs: dict[str, QAPair] = {}
        accepted = []
        for entry in complete:
            question = normalize_question(entry.question).lower()
            if len(answers[question]) > 1:
                self.catalog.rejected.append(
                    Rejected(
                        reason="conflicting_answers",
                        source=source.format,
                        source_id=entry.qid,
                        line=entry.line,
                        detail=(
                            f"question {entry.question!r} about {entry.image} has the answers "
                            f"{sorted(answers[question])}"
                        ),
                        record={"image": entry.image, "answer": entry.answer},
                    )
                )
                continue
            accepted.append(entry)
            if question in pairs:
                continue
            pairs[question] = QAPair(
                qid=entry.qid,
                question=entry.question,
                answer=entry.answer,
                answer_type=entry.answer_type,
                question_type=str(entry.metadata.get("question_type", "")),
            )
        return list(pairs.values()), accepted


def _limited(records: Iterable[Any], limit: int | None) -> Iterable[Any]:
    for number, record in enumerate(records):
        if limit is not None and number >= limit:
            return
        yield record


def _first_value(metadata: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = metadata.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def build_catalog(
    dataset: str,
    seed: int,
    sources: list[ResolvedSource],
    limit: int | None,
    renderer: ImageRenderer,
) -> Catalog:
    """Read every source into a Catalog, quarantining what cannot be used."""
    return CatalogBuilder(dataset, seed, sources, limit, renderer).build()


def source_root_listing(root: Path) -> Iterable[tuple[str, int]]:
    """Yield (relative path, size) of every file under `root`, sorted."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path.relative_to(root).as_posix(), path.stat().st_size
