"""The ground-truth ledger: every injected private value and every corrupted answer.

A ledger entry names the patient, field, value, band and the ids of every
record that carries it. Entry ids are hashes of what they record, so a record
that lists an id also proves which value it carries:
`private_ledger_id(patient, field, value)` and `corrupted_ledger_id(item, wrong answer)`.
The contract's rules recompute these ids from the records and the ledger rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from corpusforge.generators.mllmu_med.patients import PRIVATE_FIELDS
from corpusforge.generators.mllmu_med.sources import QAItem
from corpusforge.generators.seeding import stable_id

PRIVATE = "private_value"
CORRUPTED = "corrupted_answer"


def private_ledger_id(patient_id: str, field: str, value: str) -> str:
    """Return the ledger id of one patient's private value."""
    return stable_id("mllmu_med", PRIVATE, patient_id, field, value, length=20)


def corrupted_ledger_id(item_id: str, wrong_answer: str) -> str:
    """Return the ledger id of one corrupted answer."""
    return stable_id("mllmu_med", CORRUPTED, item_id, wrong_answer, length=20)


def ledger_rows(
    unit: dict[str, Any], records: Iterable[Any], forget_configs: list[str]
) -> list[dict[str, Any]]:
    """Return the ledger rows of one patient unit, given all its records (original and test).

    Rows come in a fixed order: private values in field order, then corrupted
    items in the order the patient's studies and text items list them.
    """
    patient = unit["patient"]
    carriers: dict[str, dict[str, list[str]]] = {}
    for record in records:
        key = "test" if record.variant == "test" else "original"
        for ledger_id in record.ledger_ids:
            entry = carriers.setdefault(ledger_id, {"original": [], "test": []})
            entry[key].append(record.id)

    def row(
        ledger_id: str,
        kind: str,
        field: str,
        value: str,
        correct: str | None,
        study_id: str | None,
        source: str,
        source_id: str,
    ) -> dict[str, Any]:
        found = carriers.get(ledger_id, {"original": [], "test": []})
        return {
            "ledger_id": ledger_id,
            "kind": kind,
            "patient_id": patient["patient_id"],
            "institution_id": patient["institution_id"],
            "study_id": study_id,
            "band": unit["band"],
            "forget_configs": list(forget_configs),
            "field": field,
            "value": value,
            "correct_value": correct,
            "source": source,
            "source_id": source_id,
            "record_ids": sorted(found["original"]),
            "test_record_ids": sorted(found["test"]),
        }

    rows = [
        row(
            private_ledger_id(patient["patient_id"], name, patient[name]),
            PRIVATE,
            name,
            patient[name],
            None,
            None,
            "profile",
            patient["patient_id"],
        )
        for name in PRIVATE_FIELDS
    ]
    items = [(study["study_id"], data) for study in unit["studies"] for data in study["items"]]
    items += [(None, data) for data in unit["text_items"]]
    for study_id, data in items:
        item = QAItem.from_json(data)
        if item.corrupted:
            rows.append(
                row(
                    corrupted_ledger_id(item.item_id, item.target),
                    CORRUPTED,
                    item.kind,
                    item.target,
                    item.answer,
                    study_id,
                    item.source,
                    item.source_id,
                )
            )
    return rows
