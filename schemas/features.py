"""Translate Arrow types into the Hugging Face `datasets` features JSON."""

from __future__ import annotations

import json

import pyarrow as pa

# Columns listed here are stored as {bytes, path} structs and decoded as images.
IMAGE_FIELD_KEY = b"corpusforge.image"
# IMAGE_FIELD_KEY value of a list<{bytes, path}> column whose items are images.
IMAGE_LIST_MARKER = b"list"

_VALUE_TYPES = {
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.bool_(): "bool",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.binary(): "binary",
    pa.date32(): "date32",
}


def feature_of(field_type: pa.DataType, is_image: bool = False) -> dict:
    """Return the features dict of one Arrow type, as `datasets` 4 and later writes it."""
    if is_image:
        return {"_type": "Image"}
    if field_type in _VALUE_TYPES:
        return {"dtype": _VALUE_TYPES[field_type], "_type": "Value"}
    if pa.types.is_timestamp(field_type):
        unit = field_type.unit
        tz = f", tz={field_type.tz}" if field_type.tz else ""
        return {"dtype": f"timestamp[{unit}{tz}]", "_type": "Value"}
    if pa.types.is_list(field_type) or pa.types.is_large_list(field_type):
        return {"feature": feature_of(field_type.value_type), "_type": "List"}
    if pa.types.is_struct(field_type):
        return {field.name: feature_of(field.type) for field in field_type}
    raise TypeError(f"no Hugging Face feature for Arrow type {field_type}")


def with_features(schema: pa.Schema) -> pa.Schema:
    """Return `schema` with the `huggingface` features metadata added."""
    features = {}
    for field in schema:
        marker = field.metadata.get(IMAGE_FIELD_KEY) if field.metadata else None
        if marker == IMAGE_LIST_MARKER:
            features[field.name] = {"feature": {"_type": "Image"}, "_type": "List"}
            continue
        features[field.name] = feature_of(field.type, marker == b"1")
    metadata = dict(schema.metadata or {})
    metadata[b"huggingface"] = json.dumps({"info": {"features": features}}).encode()
    return schema.with_metadata(metadata)


def image_field(name: str, nullable: bool = False) -> pa.Field:
    """Return an image column: a {bytes, path} struct marked for the Image feature."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.field(name, image_type, nullable=nullable, metadata={IMAGE_FIELD_KEY: b"1"})


def image_list_field(name: str, nullable: bool = False) -> pa.Field:
    """Return a column of image lists, decoded by `datasets` as `List(Image())`."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    metadata = {IMAGE_FIELD_KEY: IMAGE_LIST_MARKER}
    return pa.field(name, pa.list_(image_type), nullable=nullable, metadata=metadata)
