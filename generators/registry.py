"""Builders by dataset name, imported lazily so that one dataset's imports stay its own."""

from __future__ import annotations

import importlib

from corpusforge.generators.base import DatasetBuilder
from corpusforge.generators.errors import ConfigError

_BUILDERS = {
    "stephint": "corpusforge.generators.stephint.builder:StepHintBuilder",
    "mllmu_med": "corpusforge.generators.mllmu_med.builder:MllmuMedBuilder",
    "med_mim": "corpusforge.generators.med_mim.builder:MedMimBuilder",
}


def available_datasets() -> list[str]:
    return sorted(_BUILDERS)


def get_builder(dataset: str) -> DatasetBuilder:
    """Return a new builder for `dataset`, or raise ConfigError naming the known datasets."""
    if dataset not in _BUILDERS:
        raise ConfigError(
            f"unknown dataset {dataset!r}; available: {', '.join(available_datasets())}"
        )
    module_name, class_name = _BUILDERS[dataset].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
