"""Data contracts: check a staged release against its dataset's ODCS contract.

`validate_staging` runs every check and raises `ValidationFailed` when the
release breaks its contract. Great Expectations is imported on first use, so
importing this package stays cheap.
"""

from corpusforge.data_contracts.contract import load_contract
from corpusforge.data_contracts.model import Contract, ContractError
from corpusforge.data_contracts.report import ValidationReport
from corpusforge.data_contracts.validate import validate_shard, validate_staging

__all__ = [
    "Contract",
    "ContractError",
    "ValidationReport",
    "load_contract",
    "validate_shard",
    "validate_staging",
]
