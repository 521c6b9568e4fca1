"""Arrow schemas of every published table: the one source of column names and types.

Each schema carries the Hugging Face features metadata, so `datasets` restores
lists, structs and images with the right features without inferring them.
"""

from corpusforge.schemas.registry import SCHEMAS, get_schema, schema_fingerprint

__all__ = ["SCHEMAS", "get_schema", "schema_fingerprint"]
