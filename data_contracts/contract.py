"""Load a dataset's data contract from its Open Data Contract Standard (ODCS) v3 YAML file.

Only the parts of ODCS that validation runs are read: each schema object is a
table (one dataset config) and each of its properties a column. Everything this
module cannot run, such as `sql` quality rules or another `custom` engine,
raises `ContractError` instead of being skipped without notice.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from corpusforge.data_contracts.arrow_types import logical_type_of
from corpusforge.data_contracts.model import Column, Contract, ContractError, Rule, Table
from corpusforge.data_contracts.release_rules import RELEASE_RULES
from corpusforge.data_contracts.rules import ROW_RULES

CONTRACT_DIR = Path(__file__).parent
ENGINE = "corpusforge"
LOGICAL_TYPES = ("string", "date", "number", "integer", "object", "array", "boolean")
# logicalTypeOptions that become Great Expectations expectations.
OPTION_KEYS = ("minLength", "maxLength", "pattern", "minimum", "maximum")
ROW_COUNT_OPERATORS = (
    "mustBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
)


def load_contract(dataset: str) -> Contract:
    """Load `data_contracts/<dataset>.yaml`, raising ContractError when missing or malformed."""
    path = CONTRACT_DIR / f"{dataset}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONTRACT_DIR.glob("*.yaml"))) or "none"
        raise ContractError(
            f"no data contract for dataset {dataset!r}: {path} not found; contracts exist "
            f"for: {known}"
        )
    contract = parse_contract(path)
    if contract.name != dataset:
        raise ContractError(f"{path}: name is {contract.name!r}; expected {dataset!r}")
    return contract


def parse_contract(path: str | Path) -> Contract:
    """Parse one ODCS v3 YAML file into a Contract, raising ContractError on any problem."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ContractError(f"cannot read data contract {path}: {error}") from error
    return _Parser(path).contract(document)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.dataset = ""

    def fail(self, where: str, problem: str) -> ContractError:
        return ContractError(f"invalid data contract {self.path}: {where}: {problem}")

    def get(self, mapping: Any, key: str, kind: type, where: str) -> Any:
        if not isinstance(mapping, dict):
            raise self.fail(where, f"expected a mapping, found {type(mapping).__name__}")
        if key not in mapping:
            raise self.fail(where, f"missing required key {key!r}")
        value = mapping[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(f"{where}.{key}", f"expected {_KIND_NAMES[kind]}, found {value!r}")
        return value

    def flag(self, mapping: dict, key: str, where: str) -> bool:
        return self.get(mapping, key, bool, where) if key in mapping else False

    def contract(self, document: Any) -> Contract:
        for key in ("apiVersion", "kind", "id", "name", "version", "status"):
            self.get(document, key, str, "top level")
        if not document["apiVersion"].startswith("v3."):
            raise self.fail("apiVersion", f"{document['apiVersion']!r} is not ODCS v3.x")
        if document["kind"] != "DataContract":
            raise self.fail("kind", f"{document['kind']!r}; expected 'DataContract'")
        self.dataset = document["name"]
        tables: dict[str, Table] = {}
        for index, item in enumerate(self.get(document, "schema", list, "top level")):
            table = self.table(item, f"schema[{index}]")
            if table.name in tables:
                raise self.fail(f"schema[{index}]", f"duplicate schema object {table.name!r}")
            tables[table.name] = table
        return Contract(
            id=document["id"],
            name=self.dataset,
            version=document["version"],
            api_version=document["apiVersion"],
            status=document["status"],
            path=str(self.path),
            tables=tables,
        )

    def table(self, item: Any, where: str) -> Table:
        name = self.get(item, "name", str, where)
        where = f"schema object {name}"
        row_rules: list[Rule] = []
        release_rules: list[Rule] = []
        bounds: dict[str, int | None] = {"min_rows": None, "max_rows": None}
        for index, check in enumerate(item.get("quality") or []):
            location = f"{where}.quality[{index}]"
            kind = self.quality_type(check, location)
            if kind == "custom":
                rule = self.custom_rule(check, location)
                is_release = rule.implementation in RELEASE_RULES.get(self.dataset, {})
                (release_rules if is_release else row_rules).append(rule)
            elif kind == "library":
                bounds = self.row_count(check, location)
        columns = []
        for index, prop in enumerate(self.get(item, "properties", list, where)):
            columns.append(self.column(prop, f"{where}.properties[{index}]"))
        names = [column.name for column in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise self.fail(where, f"duplicate properties: {', '.join(duplicates)}")
        rule_names = [rule.name for rule in row_rules + release_rules]
        repeated = sorted({n for n in rule_names if rule_names.count(n) > 1})
        if repeated:
            raise self.fail(where, f"duplicate quality rule names: {', '.join(repeated)}")
        if sum(column.primary_key for column in columns) > 1:
            raise self.fail(where, "more than one property has primaryKey: true")
        return Table(name, tuple(columns), tuple(row_rules), tuple(release_rules), **bounds)

    def quality_type(self, check: Any, where: str) -> str:
        kind = check.get("type", "library") if isinstance(check, dict) else None
        if kind not in ("library", "custom", "text"):
            raise self.fail(where, f"quality type {kind!r} is not supported; use library or custom")
        return kind

    def custom_rule(self, check: dict, where: str) -> Rule:
        engine = self.get(check, "engine", str, where)
        if engine != ENGINE:
            raise self.fail(f"{where}.engine", f"{engine!r} is not supported; use {ENGINE!r}")
        implementation = self.get(check, "implementation", str, where)
        dataset_rules = ROW_RULES.get(self.dataset, {}) | RELEASE_RULES.get(self.dataset, {})
        if implementation not in dataset_rules:
            known = ", ".join(sorted(dataset_rules)) or "none"
            raise self.fail(
                f"{where}.implementation",
                f"no rule {implementation!r} for dataset {self.dataset!r}; known: {known}",
            )
        name = check.get("name", implementation)
        return Rule(str(name), implementation, str(check.get("description", "")))

    def row_count(self, check: dict, where: str) -> dict[str, int | None]:
        rule = check.get("rule", check.get("metric"))
        if rule != "rowCount":
            raise self.fail(where, f"library rule {rule!r} is not supported on a schema object")
        present = [key for key in ROW_COUNT_OPERATORS if key in check]
        if len(present) != 1:
            operators = ", ".join(ROW_COUNT_OPERATORS)
            raise self.fail(where, f"rowCount needs exactly one of {operators}")
        key = present[0]
        value = check[key]
        if key == "mustBeBetween":
            if not (isinstance(value, list) and len(value) == 2):
                raise self.fail(f"{where}.mustBeBetween", f"expected [min, max], found {value!r}")
            low, high = math.ceil(value[0]), math.floor(value[1])
        elif not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"expected a number, found {value!r}")
        else:
            low = {
                "mustBe": value,
                "mustBeGreaterThan": math.floor(value) + 1,
                "mustBeGreaterOrEqualTo": math.ceil(value),
            }.get(key)
            high = {
                "mustBe": value,
                "mustBeLessThan": math.ceil(value) - 1,
                "mustBeLessOrEqualTo": math.floor(value),
            }.get(key)
        return {"min_rows": low, "max_rows": high}

    def column(self, prop: Any, where: str) -> Column:
        name = self.get(prop, "name", str, where)
        where = f"property {name}"
        logical_type = self.get(prop, "logicalType", str, where)
        if logical_type not in LOGICAL_TYPES:
            raise self.fail(where, f"logicalType {logical_type!r} is not one of {LOGICAL_TYPES}")
        physical_type = self.get(prop, "physicalType", str, where)
        if logical_type_of(physical_type) != logical_type:
            raise self.fail(
                where, f"physicalType {physical_type!r} does not fit logicalType {logical_type!r}"
            )
        options = self.options(prop.get("logicalTypeOptions") or {}, f"{where}.logicalTypeOptions")
        unique = self.flag(prop, "unique", where)
        allowed_values = self.valid_values(prop.get("quality") or [], where)
        if logical_type in ("array", "object") and (options or unique or allowed_values):
            # Validation checks only existence and nulls of nested columns; see gx_suite.py.
            raise self.fail(where, f"only `required` is supported on {logical_type} properties")
        return Column(
            name=name,
            logical_type=logical_type,
            physical_type=physical_type,
            required=self.flag(prop, "required", where),
            unique=unique,
            primary_key=self.flag(prop, "primaryKey", where),
            allowed_values=allowed_values,
            minimum=options.get("minimum"),
            maximum=options.get("maximum"),
            min_length=options.get("minLength"),
            max_length=options.get("maxLength"),
            pattern=options.get("pattern"),
        )

    def options(self, options: Any, where: str) -> dict[str, Any]:
        if not isinstance(options, dict):
            raise self.fail(where, f"expected a mapping, found {options!r}")
        unknown = sorted(set(options) - set(OPTION_KEYS))
        if unknown:
            supported = ", ".join(OPTION_KEYS)
            raise self.fail(where, f"{', '.join(unknown)} not supported; supported: {supported}")
        for key, value in options.items():
            if key == "pattern":
                try:
                    re.compile(value)
                except (re.error, TypeError) as error:
                    raise self.fail(
                        f"{where}.pattern", f"invalid regex {value!r}: {error}"
                    ) from error
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise self.fail(f"{where}.{key}", f"expected a number, found {value!r}")
        return options

    def valid_values(self, checks: list, where: str) -> tuple[Any, ...] | None:
        allowed = None
        for index, check in enumerate(checks):
            location = f"{where}.quality[{index}]"
            kind = self.quality_type(check, location)
            if kind == "text":
                continue
            if kind == "custom":
                raise self.fail(
                    location, "put custom rules on the schema object, not on a property"
                )
            rule = check.get("rule", check.get("metric"))
            values = check.get("validValues", (check.get("arguments") or {}).get("validValues"))
            if rule not in ("validValues", "invalidValues") or not isinstance(values, list):
                raise self.fail(
                    location, "only rule validValues with a validValues list is supported"
                )
            allowed = tuple(values)
        return allowed


_KIND_NAMES = {str: "a string", bool: "true or false", list: "a list"}
