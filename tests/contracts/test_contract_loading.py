"""Loading ODCS contract files: the StepHint contract parses, broken files raise ContractError."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from corpusforge.data_contracts import ContractError, load_contract
from corpusforge.data_contracts.contract import CONTRACT_DIR, parse_contract
from corpusforge.generators.errors import ConfigError

STEPHINT = yaml.safe_load((CONTRACT_DIR / "stephint.yaml").read_text(encoding="utf-8"))


def _property(document: dict, name: str) -> dict:
    return next(p for p in document["schema"][0]["properties"] if p["name"] == name)


def _set(path: list, value):
    def mutate(document: dict) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def test_stephint_contract_loads():
    contract = load_contract("stephint")
    table = contract.table("chains")
    columns = {column.name: column for column in table.columns}

    assert contract.api_version.startswith("v3.0.")
    assert contract.id == "corpusforge-stephint"
    assert table.record_id == "id"
    assert table.min_rows == 1
    assert columns["num_steps"].minimum == 1
    assert columns["source_split"].pattern == "^[a-z0-9_]+$"
    assert columns["partition_method"].allowed_values == ("adaptive",)
    assert columns["verified"].allowed_values == (True,)
    assert columns["id"].unique
    assert {rule.name for rule in table.release_rules} == {
        "ids_unique_across_shards",
        "splits_disjoint",
    }
    assert "steps_concatenate_to_chain" in {rule.name for rule in table.row_rules}


def test_unknown_dataset_names_known_contracts():
    with pytest.raises(ContractError, match=r"no data contract for dataset 'nope'.*stephint"):
        load_contract("nope")


def test_contract_error_is_config_error():
    assert issubclass(ContractError, ConfigError)


def test_invalid_yaml_raises(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: v3.0.2\nschema: [unclosed\n", encoding="utf-8")

    with pytest.raises(ContractError, match=r"cannot read data contract .*broken\.yaml"):
        parse_contract(path)


def _custom_quality(engine: str, implementation: str):
    def mutate(document: dict) -> None:
        document["schema"][0]["quality"].append(
            {"type": "custom", "engine": engine, "implementation": implementation}
        )

    return mutate


BROKEN_CONTRACTS = [
    (lambda d: d.pop("apiVersion"), r"top level: missing required key 'apiVersion'"),
    (_set(["apiVersion"], "v2.2.2"), r"'v2\.2\.2' is not ODCS v3\.x"),
    (_set(["kind"], "DataProduct"), r"kind: 'DataProduct'; expected 'DataContract'"),
    (_set(["version"], 1.0), r"top level\.version: expected a string, found 1\.0"),
    (
        _custom_quality("corpusforge", "nope"),
        r"no rule 'nope' for dataset 'stephint'; known: .*splits",
    ),
    (_custom_quality("soda", "x"), r"'soda' is not supported; use 'corpusforge'"),
    (
        lambda d: d["schema"][0]["quality"].append({"type": "sql", "query": "SELECT 1"}),
        r"quality type 'sql' is not supported",
    ),
    (
        lambda d: _property(d, "num_steps")["logicalTypeOptions"].update(exclusiveMinimum=True),
        r"property num_steps\.logicalTypeOptions: exclusiveMinimum not supported",
    ),
    (
        lambda d: _property(d, "source_split")["logicalTypeOptions"].update(pattern="(["),
        r"invalid regex",
    ),
    (
        lambda d: _property(d, "num_steps").update(logicalType="string"),
        r"physicalType 'int32' does not fit logicalType 'string'",
    ),
    (
        lambda d: _property(d, "id").update(required="yes"),
        r"property id\.required: expected true or false, found 'yes'",
    ),
    (
        lambda d: d["schema"][0]["properties"].append(copy.deepcopy(_property(d, "id"))),
        r"duplicate properties: id",
    ),
    (
        lambda d: _property(d, "steps").update(unique=True),
        r"only `required` is supported on array properties",
    ),
    (
        lambda d: d["schema"][0]["quality"].append({"rule": "duplicateCount", "mustBe": 0}),
        r"library rule 'duplicateCount' is not supported on a schema object",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), BROKEN_CONTRACTS)
def test_broken_contract_raises(tmp_path: Path, mutate, message):
    document = copy.deepcopy(STEPHINT)
    mutate(document)
    path = tmp_path / "stephint.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    with pytest.raises(ContractError, match=message):
        parse_contract(path)
