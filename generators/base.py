"""The contract between the release platform and one dataset's generator.

A builder plans a release as a list of shard tasks (JSON-able, so they travel
through Airflow XCom and plan files), then turns one shard task into rows. The
platform owns everything else: staging, Parquet writing, quarantine files,
manifests, publishing.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusforge.generators.seeding import shard_rng


@dataclass(frozen=True)
class ResolvedSource:
    """One entry of the `sources` parameter, resolved when the run is planned.

    `path` is the absolute path on the planning machine and stays out of the
    content fingerprint; `name` and `sha256` stay in.
    """

    spec: str
    format: str
    path: str
    name: str
    options: dict[str, str]
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "format": self.format,
            "path": self.path,
            "name": self.name,
            "options": dict(self.options),
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedSource:
        return cls(
            spec=data["spec"],
            format=data["format"],
            path=data["path"],
            name=data["name"],
            options=dict(data["options"]),
            sha256=data["sha256"],
        )


@dataclass
class Rejected:
    """A source record that was not published, with the reason it was quarantined.

    `reason` is a snake_case code counted in the manifest (for example
    `missing_field`, `no_final_answer`, `answer_mismatch`, `duplicate_id`).
    """

    reason: str
    source: str
    source_id: str
    line: int | None
    detail: str
    record: dict[str, Any] | None = None


@dataclass(frozen=True)
class ShardTask:
    """One unit of generation: the rows of one (config, split), from `units` of work.

    `units` is builder-specific JSON, for example source record ranges.
    """

    index: int
    config: str
    split: str
    units: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "config": self.config,
            "split": self.split,
            "units": self.units,
        }

    @property
    def work(self) -> int:
        """Planned work of the shard, to balance tasks: source records of range units
        (those with `start` and `stop`), one for any other unit."""
        return sum(
            int(unit["stop"]) - int(unit["start"]) if "start" in unit and "stop" in unit else 1
            for unit in self.units
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardTask:
        return cls(data["index"], data["config"], data["split"], list(data["units"]))


@dataclass(frozen=True)
class PlanContext:
    """Parameters and resolved sources that a builder receives when it plans."""

    dataset: str
    release: str
    seed: int
    reference_date: str
    sources: list[ResolvedSource]
    limit: int | None
    shard_size: int
    options: dict[str, Any]


@dataclass(frozen=True)
class ShardContext:
    """Parameters, sources and the shard task that a builder receives to generate one shard."""

    dataset: str
    release: str
    seed: int
    reference_date: str
    sources: list[ResolvedSource]
    limit: int | None
    options: dict[str, Any]
    shard: ShardTask
    num_shards: int

    def rng(self, purpose: str = "") -> random.Random:
        """Return this shard's random stream for `purpose`, from (dataset, seed, shard index)."""
        return shard_rng(self.dataset, self.seed, self.shard.index, purpose)


@dataclass(frozen=True)
class SourceLicense:
    """Attribution of one source format, shown on the dataset card."""

    name: str
    license: str
    citation: str = ""
    url: str = ""
    contamination_warning: str = ""


class DatasetBuilder(ABC):
    """One dataset's generator. Subclasses stay free of Airflow and of file layout."""

    name: str
    description: str
    pretty_name: str = ""
    formats: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    license: str = "other"
    method_citation: str = ""

    @abstractmethod
    def default_sources(self) -> list[str]:
        """Return the embedded default `sources`, which need no files outside the package."""

    def default_options(self) -> dict[str, Any]:
        """Return dataset-specific parameters and their defaults."""
        return {}

    @abstractmethod
    def resolve_source(self, fmt: str, path: str, options: dict[str, str]) -> tuple[str, str, str]:
        """Check one source and return (absolute path, display name, sha256).

        Raise `SourceError` when the source cannot be read, and `ConfigError` for
        an unknown format.
        """

    @abstractmethod
    def plan(self, ctx: PlanContext) -> list[ShardTask]:
        """Split the release into shard tasks, numbered 0..n-1 in a stable order."""

    @abstractmethod
    def generate(self, ctx: ShardContext) -> Iterator[dict[str, Any] | Rejected]:
        """Yield the shard's rows (dicts matching the config's schema) and rejected records."""

    def source_license(self, fmt: str) -> SourceLicense | None:
        """Return the attribution of a source format, for the dataset card."""
        return None

    def card_configs(self, manifest: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Return the card's `configs` entries, or None for one glob per (config, split).

        Override this when a config's splits are made of other configs' files,
        for example nested forget sets listed as bands of patients.
        """
        return None

    def card_sections(self, manifest: dict[str, Any], release_dir: Path) -> str:
        """Return extra Markdown for the dataset card; files it links go in `release_dir`."""
        return ""
