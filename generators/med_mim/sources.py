"""Read NIH ChestX-ray14 follow-up series: `patients.json` or the official `Data_Entry_2017` CSV.

Two layouts are accepted:

- `patients.json`: a list of `{patient_id, visits: [{image, finding_labels[],
  follow_up, age, sex, view}]}`, with `image` relative to the file's folder.
- the upstream CSV (`Image Index`, `Finding Labels` joined by `|`, `Follow-up #`,
  `Patient ID`, `Patient Age`, `Patient Gender`, `View Position`), with the
  images in an image folder: `image_root`, else the CSV's folder. An image is
  looked up as `<root>/<name>`, then `<root>/images/<name>`, then anywhere under
  the root, which covers the `images_001/images/` folders of the full download.

Visits are ordered by follow-up number, never by file name: in the upstream
data `00000003_000.png` is follow-up 7 of patient 3. Problems with one row
(unknown finding label, missing or duplicate follow-up number, missing field,
duplicate image name) quarantine that row. In `patients.json` an `age` that is
present but not a whole number of years from 0 to 120 quarantines the visit as
`invalid_age`. The CSV reader keeps such visits with an unknown age instead,
because upstream CSV versions contain data-entry errors such as 412. A patient
left with one usable visit cannot form a series and is quarantined as
`single_visit` by the catalog, after its images have been checked. Problems
with the whole file raise SourceError.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusforge.generators.base import Rejected
from corpusforge.generators.errors import SourceError
from corpusforge.generators.med_mim.facts import NIH_FINDINGS, NO_FINDING

log = logging.getLogger(__name__)

FORMAT = "nih_cxr14"
PATIENTS_FILE = "patients.json"
CSV_PATTERN = "Data_Entry_2017*.csv"
CSV_REQUIRED = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID")
# Ages above this are data-entry errors in some upstream CSV versions (for example 412).
MAX_AGE_YEARS = 120
_AGE = re.compile(r"^\s*0*(\d{1,3})\s*[Yy]?\s*$")
_KNOWN_LABELS = frozenset((*NIH_FINDINGS, NO_FINDING))


@dataclass
class NihVisit:
    """One image of a patient's series, as read from the source row."""

    image: str
    relative_path: str
    findings: tuple[str, ...]
    follow_up: int
    age: int | None
    sex: str | None
    view: str | None
    line: int | None
    row: dict[str, Any]


@dataclass
class NihPatient:
    """A patient and their visits, ordered by follow-up number."""

    patient_id: str
    visits: list[NihVisit] = field(default_factory=list)


@dataclass
class NihSource:
    """Every usable patient of one source, and the rows quarantined while reading it.

    Each visit's image is `relative_path` inside `image_root`.
    """

    path: Path
    layout: str
    image_root: Path
    patients: list[NihPatient]
    rejected: list[Rejected]


def locate_nih_file(path: Path) -> tuple[Path, str]:
    """Return the file to read and its layout (`patients` or `csv`) for a source path.

    A folder is read through its `patients.json` when it has one, else through
    its single `Data_Entry_2017*.csv`.
    """
    if path.is_file():
        if path.suffix.lower() == ".json":
            return path, "patients"
        if path.suffix.lower() == ".csv":
            return path, "csv"
        raise SourceError(
            str(path),
            "unsupported nih_cxr14 file type",
            fix="point the source at patients.json, a Data_Entry_2017 CSV or their folder",
        )
    if (path / PATIENTS_FILE).is_file():
        return path / PATIENTS_FILE, "patients"
    candidates = sorted(path.glob(CSV_PATTERN))
    if len(candidates) == 1:
        return candidates[0], "csv"
    if not candidates:
        raise SourceError(
            str(path),
            f"folder has neither {PATIENTS_FILE} nor a {CSV_PATTERN} file",
            fix="point the source at the folder of the ChestX-ray14 metadata",
        )
    names = ", ".join(candidate.name for candidate in candidates)
    raise SourceError(
        str(path),
        f"folder has several CSV files ({names})",
        fix="point the source at one of them",
    )


def read_nih(path: str | Path, options: dict[str, str], limit: int | None = None) -> NihSource:
    """Read one nih_cxr14 source: valid patients with their visits, and quarantined rows.

    `limit` caps the patients read from patients.json and the rows read from a CSV.
    """
    file, layout = locate_nih_file(Path(path))
    image_root = Path(options["image_root"]) if options.get("image_root") else file.parent
    if not image_root.is_dir():
        raise SourceError(
            str(image_root), "image folder not found", fix="set image_root to the image folder"
        )
    rejected: list[Rejected] = []
    if layout == "patients":
        image_root = file.parent
        rows = _patients_json_rows(file, limit)
    else:
        rows = _csv_rows(file, limit, _ImageIndex(image_root))
    visits_by_patient: dict[str, list[NihVisit]] = defaultdict(list)
    seen_images: dict[str, int | None] = {}
    for row in rows:
        if isinstance(row, Rejected):
            rejected.append(row)
            continue
        patient_id, visit = row
        if visit.image in seen_images:
            rejected.append(
                _reject(
                    "duplicate_id",
                    visit.image,
                    visit.line,
                    f"image {visit.image!r} is listed twice; the first row is kept",
                    visit.row,
                )
            )
            continue
        seen_images[visit.image] = visit.line
        visits_by_patient[patient_id].append(visit)

    patients = []
    for patient_id in sorted(visits_by_patient, key=_patient_sort_key):
        visits = _drop_duplicate_follow_ups(visits_by_patient[patient_id], rejected)
        patients.append(NihPatient(patient_id, sorted(visits, key=lambda v: v.follow_up)))
    log.info(
        "read %s (%s layout): %d patients, %d rows quarantined",
        file,
        layout,
        len(patients),
        len(rejected),
    )
    return NihSource(file, layout, image_root, patients, rejected)


def _patient_sort_key(patient_id: str) -> tuple[int, str]:
    return (int(patient_id), "") if patient_id.isdigit() else (1 << 62, patient_id)


def _reject(
    reason: str, source_id: str, line: int | None, detail: str, record: dict[str, Any]
) -> Rejected:
    return Rejected(
        reason=reason, source=FORMAT, source_id=source_id, line=line, detail=detail, record=record
    )


def _drop_duplicate_follow_ups(visits: list[NihVisit], rejected: list[Rejected]) -> list[NihVisit]:
    """Quarantine every visit that shares its follow-up number, because their order is unknown."""
    counts: dict[int, int] = defaultdict(int)
    for visit in visits:
        counts[visit.follow_up] += 1
    kept = []
    for visit in visits:
        if counts[visit.follow_up] > 1:
            rejected.append(
                _reject(
                    "duplicate_follow_up",
                    visit.image,
                    visit.line,
                    f"{counts[visit.follow_up]} visits of this patient have follow-up number "
                    f"{visit.follow_up}, so their order is unknown",
                    visit.row,
                )
            )
        else:
            kept.append(visit)
    return kept


def parse_labels(text: Any) -> tuple[tuple[str, ...] | None, list[str]]:
    """Parse finding labels (a list or a `|`-joined string); return (findings, unknown labels).

    `No Finding` gives an empty tuple. The findings are None when a label is
    unknown or `No Finding` is mixed with a finding.
    """
    if isinstance(text, str):
        labels = [label.strip() for label in text.split("|")]
    elif isinstance(text, list) and all(isinstance(label, str) for label in text):
        labels = [label.strip() for label in text]
    else:
        return None, [repr(text)]
    unknown = [label for label in labels if label not in _KNOWN_LABELS]
    if unknown or not labels:
        return None, unknown or ["(empty)"]
    findings = sorted({label for label in labels if label != NO_FINDING})
    if findings and NO_FINDING in labels:
        return None, [f"{NO_FINDING} together with {', '.join(findings)}"]
    return tuple(findings), []


def parse_age(value: Any) -> int | None:
    """Return an age in years from `58`, `"58"` or `"058Y"`, or None when missing or implausible."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        age = value
    elif isinstance(value, float) and value.is_integer():
        age = int(value)
    elif isinstance(value, str) and _AGE.match(value):
        age = int(_AGE.match(value).group(1))
    else:
        return None
    return age if 0 <= age <= MAX_AGE_YEARS else None


def parse_follow_up(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: Any) -> str | None:
    return value.strip().upper() or None if isinstance(value, str) else None


def _visit(
    patient_id: str,
    image: str,
    relative_path: str,
    labels: Any,
    follow_up: Any,
    age: Any,
    sex: Any,
    view: Any,
    line: int | None,
    row: dict[str, Any],
) -> tuple[str, NihVisit] | Rejected:
    findings, unknown = parse_labels(labels)
    if findings is None:
        return _reject(
            "unknown_label",
            image,
            line,
            f"invalid finding labels {unknown}; expected the ChestX-ray14 classes or "
            f"{NO_FINDING!r}",
            row,
        )
    number = parse_follow_up(follow_up)
    if number is None:
        return _reject(
            "missing_follow_up",
            image,
            line,
            f"follow-up number {follow_up!r} is missing or not a non-negative integer",
            row,
        )
    visit = NihVisit(
        image=image,
        relative_path=relative_path,
        findings=findings,
        follow_up=number,
        age=parse_age(age),
        sex=_text(sex),
        view=_text(view),
        line=line,
        row=row,
    )
    return patient_id, visit


def _patients_json_rows(file: Path, limit: int | None) -> Iterator[tuple[str, NihVisit] | Rejected]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise SourceError(str(file), f"not UTF-8: {error}", fix="save the file as UTF-8") from error
    except json.JSONDecodeError as error:
        raise SourceError(
            str(file), f"invalid JSON: {error.msg}", error.lineno, fix="repair the JSON syntax"
        ) from error
    if not isinstance(data, list):
        raise SourceError(
            str(file),
            f"expected a JSON list of patients, found {type(data).__name__}",
            fix="write a list of {patient_id, visits} objects",
        )
    if not data:
        raise SourceError(str(file), "the file lists no patients", fix="add patients")
    for number, patient in enumerate(data[:limit] if limit else data):
        where = f"patient {number}"
        if not isinstance(patient, dict) or not isinstance(patient.get("visits"), list):
            yield _reject(
                "missing_field", where, None, "patient entry without a visits list", {"entry": 0}
            )
            continue
        patient_id = patient.get("patient_id")
        if isinstance(patient_id, bool) or not isinstance(patient_id, int | str):
            yield _reject("missing_field", where, None, "patient entry without a patient_id", {})
            continue
        for visit in patient["visits"]:
            image = visit.get("image") if isinstance(visit, dict) else None
            if not isinstance(image, str) or not image.strip():
                yield _reject(
                    "missing_field",
                    f"{where} (patient_id {patient_id})",
                    None,
                    "visit without an image path",
                    visit if isinstance(visit, dict) else {"visit": repr(visit)},
                )
                continue
            age = visit.get("age")
            age_given = age is not None and not (isinstance(age, str) and not age.strip())
            if age_given and parse_age(age) is None:
                yield _reject(
                    "invalid_age",
                    image,
                    None,
                    f"age {age!r} is not a whole number of years from 0 to {MAX_AGE_YEARS}",
                    dict(visit),
                )
                continue
            yield _visit(
                str(patient_id),
                image,
                image,
                visit.get("finding_labels"),
                visit.get("follow_up"),
                visit.get("age"),
                visit.get("sex"),
                visit.get("view"),
                None,
                dict(visit),
            )


class _ImageIndex:
    """Find a CSV row's image file under the image root, scanning the folder at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, Path] | None = None

    def find(self, name: str) -> str:
        """Return the image's path relative to the root, or `name` itself when it is not found."""
        for relative in (name, f"images/{name}"):
            if (self.root / relative).is_file():
                return relative
        if self._by_name is None:
            self._by_name = {}
            for folder, _, files in sorted(os.walk(self.root)):
                for file in sorted(files):
                    relative = (Path(folder) / file).relative_to(self.root)
                    self._by_name.setdefault(file, relative.as_posix())
        # A missing file is reported by the image loader as `missing_image`.
        return self._by_name.get(name, name)


def _csv_rows(
    file: Path, limit: int | None, index: _ImageIndex
) -> Iterator[tuple[str, NihVisit] | Rejected]:
    try:
        handle = file.open(encoding="utf-8", newline="")
        header_line = handle.readline()
    except UnicodeDecodeError as error:
        raise SourceError(str(file), f"not UTF-8: {error}", fix="save the file as UTF-8") from error
    if not header_line.strip():
        handle.close()
        raise SourceError(str(file), "the file is empty", 1, fix="add the CSV header and rows")
    header = next(csv.reader([header_line]))
    missing = [column for column in CSV_REQUIRED if column not in header]
    if missing:
        handle.close()
        raise SourceError(
            str(file),
            f"missing columns {missing} in the header {header}",
            1,
            fix="use the Data_Entry_2017 column names",
        )
    with handle:
        reader = csv.reader(handle)
        count = 0
        try:
            for values in reader:
                line = reader.line_num + 1
                if not any(value.strip() for value in values):
                    continue
                count += 1
                if limit is not None and count > limit:
                    return
                row = dict(zip(header, values, strict=False))
                image = row.get("Image Index", "").strip()
                patient_id = row.get("Patient ID", "").strip()
                if not image or not patient_id:
                    yield _reject(
                        "missing_field",
                        image or f"line {line}",
                        line,
                        "row without an Image Index or Patient ID",
                        row,
                    )
                    continue
                yield _visit(
                    patient_id.lstrip("0") or "0",
                    image,
                    index.find(image),
                    row.get("Finding Labels", ""),
                    row.get("Follow-up #", ""),
                    row.get("Patient Age"),
                    row.get("Patient Gender"),
                    row.get("View Position"),
                    line,
                    row,
                )
        except UnicodeDecodeError as error:
            raise SourceError(
                str(file), f"not UTF-8: {error}", reader.line_num + 1, fix="save the file as UTF-8"
            ) from error
        except csv.Error as error:
            raise SourceError(
                str(file), f"malformed CSV: {error}", reader.line_num + 1, fix="repair the row"
            ) from error
