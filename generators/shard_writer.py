"""Write one shard's rows to Parquet with the explicit schema, and its rejects to JSONL."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpusforge.generators import layout
from corpusforge.generators.base import Rejected, ShardContext
from corpusforge.generators.faults import crash_point
from corpusforge.schemas import get_schema

# A row group is flushed at this many rows or this many bytes of Arrow data,
# whichever comes first, which keeps row groups well under the 100 MB
# (uncompressed) that the Hugging Face dataset viewer reads at once.
ROW_GROUP_MAX_ROWS = 2_000
ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024
COMPRESSION = "zstd"
MAX_QUARANTINE_STRING = 2_000


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _truncate(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_QUARANTINE_STRING:
        return value[:MAX_QUARANTINE_STRING] + "...[truncated]"
    if isinstance(value, dict):
        return {key: _truncate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_truncate(item) for item in value]
    return value


def _rejected_json(rejected: Rejected, shard_index: int) -> str:
    data = {
        "reason": rejected.reason,
        "source": rejected.source,
        "source_id": rejected.source_id,
        "line": rejected.line,
        "detail": rejected.detail,
        "shard": shard_index,
        "record": _truncate(rejected.record),
    }
    # Lone surrogates cannot be encoded as UTF-8; escape them instead of failing.
    return json.dumps(data, ensure_ascii=True, sort_keys=True)


def write_shard(
    staging: Path, context: ShardContext, items: Iterable[dict[str, Any] | Rejected]
) -> dict[str, Any]:
    """Stream `items` into `parts/shard-NNNNN.parquet` and `quarantine/shard-NNNNN.jsonl`.

    Files are written under temporary names and renamed into place, so a shard
    killed midway leaves no file that looks complete. No Parquet file is written
    for a shard without rows.
    """
    shard = context.shard
    schema = get_schema(context.dataset, shard.config)
    name = layout.part_name(shard.index)
    part_path = staging / "parts" / f"{name}.parquet"
    quarantine_path = staging / "quarantine" / f"{name}.jsonl"
    tmp_part = part_path.with_name(f".{name}.{os.getpid()}.parquet.tmp")
    tmp_quarantine = quarantine_path.with_name(f".{name}.{os.getpid()}.jsonl.tmp")
    quarantine_path.parent.mkdir(parents=True, exist_ok=True)
    # A killed earlier attempt of this shard can leave temporary files behind; they
    # would otherwise be published inside quarantine/.
    for folder in (part_path.parent, quarantine_path.parent):
        for stale in folder.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)

    rows = 0
    reasons: Counter = Counter()
    writer: pq.ParquetWriter | None = None
    batch: list[dict[str, Any]] = []
    batch_bytes = 0

    def flush() -> None:
        nonlocal writer, batch, batch_bytes
        if not batch:
            return
        table = pa.Table.from_pylist(batch, schema=schema)
        if writer is None:
            writer = pq.ParquetWriter(tmp_part, schema, compression=COMPRESSION)
        writer.write_table(table, row_group_size=len(batch))
        crash_point("mid_shard")
        batch = []
        batch_bytes = 0

    try:
        with tmp_quarantine.open("w", encoding="utf-8") as quarantine:
            for item in items:
                if isinstance(item, Rejected):
                    reasons[item.reason] += 1
                    quarantine.write(_rejected_json(item, shard.index) + "\n")
                    continue
                batch.append(item)
                rows += 1
                batch_bytes += sum(len(v) for v in item.values() if isinstance(v, str | bytes))
                if len(batch) >= ROW_GROUP_MAX_ROWS or batch_bytes >= ROW_GROUP_MAX_BYTES:
                    flush()
            flush()
        if writer is not None:
            writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            writer.close()
        tmp_part.unlink(missing_ok=True)
        tmp_quarantine.unlink(missing_ok=True)
        raise

    if rows:
        os.replace(tmp_part, part_path)
    else:
        part_path.unlink(missing_ok=True)
    if reasons:
        os.replace(tmp_quarantine, quarantine_path)
    else:
        tmp_quarantine.unlink()
        quarantine_path.unlink(missing_ok=True)

    return {
        "index": shard.index,
        "config": shard.config,
        "split": shard.split,
        "rows": rows,
        "file": f"parts/{name}.parquet" if rows else None,
        "bytes": part_path.stat().st_size if rows else 0,
        "sha256": file_sha256(part_path) if rows else None,
        "quarantined": dict(sorted(reasons.items())),
        "quarantine_file": f"quarantine/{name}.jsonl" if reasons else None,
    }
