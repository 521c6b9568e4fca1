"""Lookup of every dataset's tables and a stable fingerprint of each schema."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from corpusforge.schemas import med_mim, mllmu_med, stephint

# dataset name -> (schema version, {config name: Arrow schema})
SCHEMAS: dict[str, tuple[str, dict[str, pa.Schema]]] = {
    "stephint": (stephint.SCHEMA_VERSION, stephint.CONFIGS),
    "med_mim": (med_mim.SCHEMA_VERSION, med_mim.CONFIGS),
    "mllmu_med": (mllmu_med.SCHEMA_VERSION, mllmu_med.CONFIGS),
}


def get_schema(dataset: str, config: str) -> pa.Schema:
    """Return the Arrow schema of one dataset config, or raise KeyError naming the valid ones."""
    if dataset not in SCHEMAS:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(SCHEMAS))}")
    configs = SCHEMAS[dataset][1]
    if config not in configs:
        raise KeyError(
            f"dataset {dataset!r} has no config {config!r}; known: {', '.join(sorted(configs))}"
        )
    return configs[config]


def schema_fingerprint(dataset: str) -> str:
    """Return a sha256 over the serialized schemas (with metadata) of every config."""
    digest = hashlib.sha256()
    for config, schema in sorted(SCHEMAS[dataset][1].items()):
        digest.update(config.encode())
        digest.update(schema.serialize().to_pybytes())
    return digest.hexdigest()
