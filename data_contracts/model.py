"""The parsed form of a data contract: tables, columns and the rules validation runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corpusforge.generators.errors import ConfigError


class ContractError(ConfigError):
    """A data contract file that is malformed or uses a feature validation cannot run."""


@dataclass(frozen=True)
class Column:
    """One ODCS property: a column, its Arrow type name and its value constraints."""

    name: str
    logical_type: str
    physical_type: str
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    allowed_values: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class Rule:
    """A `custom` quality rule: `implementation` names a rule in rules.py or release_rules.py."""

    name: str
    implementation: str
    description: str = ""


@dataclass(frozen=True)
class Table:
    """One ODCS schema object: the columns and rules of one dataset config."""

    name: str
    columns: tuple[Column, ...]
    row_rules: tuple[Rule, ...] = ()
    release_rules: tuple[Rule, ...] = ()
    min_rows: int | None = None
    max_rows: int | None = None

    @property
    def record_id(self) -> str | None:
        """Return the primary key column, which reports use to name failing records."""
        return next((column.name for column in self.columns if column.primary_key), None)


@dataclass(frozen=True)
class Contract:
    """A parsed data contract. `name` is the dataset, and `tables` is keyed by config."""

    id: str
    name: str
    version: str
    api_version: str
    status: str
    path: str
    tables: dict[str, Table]

    def table(self, config: str) -> Table:
        if config not in self.tables:
            known = ", ".join(sorted(self.tables))
            raise ContractError(
                f"data contract {self.path} has no schema object {config!r}; it has: {known}"
            )
        return self.tables[config]
