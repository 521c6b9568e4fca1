"""Each dataset's data contract must agree with its Arrow schema in corpusforge.schemas."""

from __future__ import annotations

import pyarrow as pa
import pytest

from corpusforge.data_contracts import load_contract
from corpusforge.data_contracts.arrow_types import arrow_type_name
from corpusforge.schemas import SCHEMAS

CONFIGS = [
    (dataset, config) for dataset, (_, configs) in sorted(SCHEMAS.items()) for config in configs
]
FIELDS = [
    (dataset, config, field) for dataset, config in CONFIGS for field in SCHEMAS[dataset][1][config]
]


@pytest.mark.parametrize("dataset", sorted(SCHEMAS))
def test_contract_has_one_table_per_config(dataset):
    contract = load_contract(dataset)

    assert contract.name == dataset
    assert sorted(contract.tables) == sorted(SCHEMAS[dataset][1])


@pytest.mark.parametrize(("dataset", "config"), CONFIGS)
def test_contract_column_order_matches_schema(dataset, config):
    table = load_contract(dataset).table(config)
    schema = SCHEMAS[dataset][1][config]

    assert [column.name for column in table.columns] == schema.names


@pytest.mark.parametrize(
    ("dataset", "config", "field"),
    FIELDS,
    ids=[f"{dataset}.{config}.{field.name}" for dataset, config, field in FIELDS],
)
def test_contract_column_matches_arrow_field(dataset, config, field):
    columns = {column.name: column for column in load_contract(dataset).table(config).columns}

    assert field.name in columns, f"{field.name} is in the Arrow schema but not in the contract"
    column = columns[field.name]
    assert column.physical_type == arrow_type_name(field.type)
    assert column.required == (not field.nullable)


@pytest.mark.parametrize(
    ("data_type", "name"),
    [
        (pa.string(), "string"),
        (pa.int32(), "int32"),
        (pa.bool_(), "bool"),
        (pa.list_(pa.string()), "list<string>"),
        (pa.list_(pa.field("element", pa.string())), "list<string>"),
        (
            pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32())])),
            "list<struct<start:int32,end:int32>>",
        ),
        (pa.large_list(pa.int64()), "large_list<int64>"),
    ],
)
def test_arrow_type_name_spells_type(data_type, name):
    assert arrow_type_name(data_type) == name
