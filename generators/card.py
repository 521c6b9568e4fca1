"""Write a release's dataset card: Hugging Face YAML front matter, then the description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from corpusforge.generators.base import DatasetBuilder
from corpusforge.schemas import get_schema


def _card_feature(name: str, feature: dict[str, Any]) -> dict[str, Any]:
    """Translate one `datasets` features entry into the card's `dataset_info` form."""
    entry: dict[str, Any] = {"name": name}
    entry.update(_card_type(feature))
    return entry


def _card_type(feature: dict[str, Any]) -> dict[str, Any]:
    kind = feature.get("_type")
    if kind == "Value":
        return {"dtype": feature["dtype"]}
    if kind == "Image":
        return {"dtype": "image"}
    if kind == "List":
        inner = feature["feature"]
        inner_type = _card_type(inner)
        return {"list": inner_type.get("dtype", inner_type.get("struct", inner_type))}
    return {"struct": [_card_feature(key, value) for key, value in feature.items()]}


def _features(dataset: str, config: str) -> list[dict[str, Any]]:
    metadata = get_schema(dataset, config).metadata[b"huggingface"]
    features = json.loads(metadata)["info"]["features"]
    return [_card_feature(name, feature) for name, feature in features.items()]


def release_license(manifest: dict[str, Any], builder: DatasetBuilder) -> str:
    """Return the Hub license id: the sources' license when they share one, else the builder's."""
    licenses = set()
    for source in manifest["sources"]:
        attribution = builder.source_license(source["format"])
        licenses.add(attribution.license.lower() if attribution else builder.license)
    return licenses.pop() if len(licenses) == 1 else builder.license


def front_matter(
    manifest: dict[str, Any], builder: DatasetBuilder, release_dir: Path
) -> dict[str, Any]:
    """Return the card's YAML front matter; `release_dir` contains the shards under data/."""
    configs = []
    infos = []
    for config, splits in sorted(manifest["splits"].items()):
        configs.append(
            {
                "config_name": config,
                "data_files": [
                    {"split": split, "path": f"data/{config}/{split}-*.parquet"}
                    for split in sorted(splits)
                ],
            }
        )
        infos.append(_dataset_info(manifest, config, splits, release_dir))
    custom = builder.card_configs(manifest)
    if custom is not None:
        configs = custom
    return {
        "license": release_license(manifest, builder),
        "pretty_name": builder.pretty_name,
        "tags": ["synthetic", *builder.tags],
        "configs": configs,
        "dataset_info": infos,
    }


def _dataset_info(
    manifest: dict[str, Any], config: str, splits: dict[str, int], release_dir: Path
) -> dict[str, Any]:
    """Return the Hugging Face `dataset_info` entry of one stored config.

    As in the `datasets` library (DatasetInfo, version 5.2), a split's `num_bytes`
    is the size of its data in memory, `dataset_size` the sum over the splits, and
    `download_size` the size of the files.
    """
    memory_bytes: dict[str, int] = {}
    file_bytes = 0
    for shard in manifest["shards"]:
        if shard["config"] != config:
            continue
        split = shard["split"]
        memory_bytes[split] = memory_bytes.get(split, 0) + _arrow_bytes(release_dir / shard["path"])
        file_bytes += shard["bytes"]
    split_infos = [
        {"name": split, "num_bytes": memory_bytes[split], "num_examples": rows}
        for split, rows in sorted(splits.items())
    ]
    return {
        "config_name": config,
        "features": _features(manifest["dataset"], config),
        "splits": split_infos,
        "download_size": file_bytes,
        "dataset_size": sum(info["num_bytes"] for info in split_infos),
    }


def _arrow_bytes(shard: Path) -> int:
    """Return the size in bytes of a Parquet file's rows as Arrow arrays.

    `datasets` 5.2 counts a split the same way, as the sum of `pyarrow.Table.nbytes`
    of the tables that its ArrowWriter writes.

    The rows are read 256 at a time and dropped, so the shard is never in memory
    whole. The Parquet footer's uncompressed sizes are no substitute, because they
    count a dictionary-encoded column once per distinct value: Med-MIM's repeated
    images came out about 50 times smaller than in memory.
    """
    batches = pq.ParquetFile(shard).iter_batches(batch_size=256)
    return sum(batch.nbytes for batch in batches)


def _loading_snippet(manifest: dict[str, Any], configs: list[dict[str, Any]]) -> str:
    """Return loading code for the card's first config and the first stored config's files.

    A card config can differ from the folders under data/: MLLMU-Med's forget
    configs combine splits of the stored `records` config.
    """
    stored = sorted(manifest["splits"])[0] if manifest["splits"] else "default"
    config = configs[0]["config_name"] if configs else stored
    return (
        "```python\n"
        "from datasets import load_dataset\n\n"
        f'ds = load_dataset("path/to/{manifest["dataset"]}/{manifest["release"]}", "{config}")\n\n'
        "import duckdb\n"
        f"duckdb.sql(\"SELECT count(*) FROM 'data/{stored}/*.parquet'\")\n"
        "```\n"
    )


def _remote_loading_snippet(
    manifest: dict[str, Any], configs: list[dict[str, Any]], location: str
) -> str:
    """Return loading code with the full URLs of the first config's files under `location`."""
    config = configs[0] if configs else {"config_name": "default", "data_files": []}
    data_files: dict[str, list[str]] = {}
    for entry in config.get("data_files") or []:
        patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        data_files[entry["split"]] = [f"{location}/{pattern}" for pattern in patterns]
    first = manifest["shards"][0] if manifest["shards"] else None
    first_files = [
        f"{location}/{shard['path']}"
        for shard in manifest["shards"]
        if first and (shard["config"], shard["split"]) == (first["config"], first["split"])
    ]
    return (
        f"The files of config `{config['config_name']}`; the front matter above lists every "
        "config relative to this folder. `storage_options` are the fsspec driver's options "
        "(for s3fs, such as `endpoint_url`); credentials come from the driver's usual "
        "environment variables.\n\n"
        "```python\n"
        "from datasets import load_dataset\n\n"
        f"data_files = {json.dumps(data_files, indent=4)}\n"
        'ds = load_dataset("parquet", data_files=data_files, storage_options={})\n\n'
        "import pandas as pd\n\n"
        f"files = {json.dumps(first_files, indent=4)}\n"
        "df = pd.concat(pd.read_parquet(url, storage_options={}) for url in files)\n\n"
        "import polars as pl\n\n"
        "# Polars reads object stores with its own client, so its storage_options take\n"
        '# keys such as "aws_endpoint_url" and "aws_region" instead of fsspec options.\n'
        "lf = pl.scan_parquet(files, storage_options={})\n"
        "```\n"
    )


def render_card(
    manifest: dict[str, Any],
    builder: DatasetBuilder,
    release_dir: Path,
    location: str | None = None,
) -> str:
    """Render the card; `location` is the URL of a release on an object store, for loading code."""
    matter = front_matter(manifest, builder, release_dir)
    header = yaml.safe_dump(matter, sort_keys=False, allow_unicode=True)
    lines = [f"---\n{header}---\n", f"# {builder.pretty_name}: release {manifest['release']}\n"]
    lines.append(builder.description.strip() + "\n")

    warnings = []
    for source in manifest["sources"]:
        attribution = builder.source_license(source["format"])
        if attribution and attribution.contamination_warning:
            warnings.append(f"- `{source['name']}`: {attribution.contamination_warning}")
    if warnings:
        lines.append("> **Contamination warning.** Some sources are public benchmark test data:\n>")
        lines.extend(f"> {warning}" for warning in warnings)
        lines.append("")

    lines.append("## Loading\n")
    if location is None:
        lines.append(_loading_snippet(manifest, matter["configs"]))
    else:
        lines.append(_remote_loading_snippet(manifest, matter["configs"], location))

    lines.append("## Statistics\n")
    lines.append("| config | split | rows |\n|---|---|---|")
    for config, splits in sorted(manifest["splits"].items()):
        for split, rows in sorted(splits.items()):
            lines.append(f"| {config} | {split} | {rows} |")
    for empty in manifest["empty_splits"]:
        lines.append(f"| {empty['config']} | {empty['split']} | 0 (left out of the configs) |")
    quarantine = manifest["quarantine"]
    lines.append(f"\nQuarantined source records: {quarantine['total']}")
    for reason, count in quarantine["by_reason"].items():
        lines.append(f"- `{reason}`: {count}")
    lines.append("\nThe records are in `quarantine/`, one JSON object per line with its reason.\n")

    extra = builder.card_sections(manifest, release_dir)
    if extra:
        lines.append(extra.rstrip() + "\n")

    lines.append("## How this release was generated\n")
    lines.append(f"- generator: corpusforge {manifest['generator_version']}")
    lines.append(f"- seed: {manifest['seed']}, reference date: {manifest['reference_date']}")
    lines.append(f"- content fingerprint: `{manifest['content_fingerprint']}`")
    lines.append("- parameters:\n")
    lines.append(
        "```json\n"
        + json.dumps(_portable(manifest["parameters"], manifest), indent=2, sort_keys=True)
        + "\n```\n"
    )
    lines.append("### Sources\n")
    lines.append("| source | format | sha256 | license | attribution |\n|---|---|---|---|---|")
    for source in manifest["sources"]:
        attribution = builder.source_license(source["format"])
        license_name = attribution.license if attribution else "see the source"
        credit = (
            (attribution.name + (f" ({attribution.url})" if attribution.url else ""))
            if attribution
            else ""
        )
        lines.append(
            f"| `{source['name']}` | {source['format']} | `{source['sha256'][:16]}` | "
            f"{license_name} | {credit} |"
        )

    lines.append("\n## Citations\n")
    citations = [builder.method_citation] if builder.method_citation else []
    for source in manifest["sources"]:
        attribution = builder.source_license(source["format"])
        if attribution and attribution.citation and attribution.citation not in citations:
            citations.append(attribution.citation)
    lines.append("```bibtex\n" + "\n\n".join(c.strip() for c in citations) + "\n```\n")
    return "\n".join(lines)


def write_card(
    release_dir: Path,
    manifest: dict[str, Any],
    builder: DatasetBuilder,
    location: str | None = None,
) -> None:
    """Write README.md into `release_dir`; pass `location` for a release on an object store."""
    text = render_card(manifest, builder, release_dir, location)
    (release_dir / "README.md").write_text(text, encoding="utf-8")


def _portable(value: Any, manifest: dict[str, Any]) -> Any:
    """Return `value` with the output root in its strings written as `<output_root>`.

    The card is published with the data, so it names no folder of the machine
    that built it. The manifest keeps the real paths.
    """
    root = str(manifest.get("output_root") or "")
    if isinstance(value, dict):
        return {key: _portable(item, manifest) for key, item in value.items()}
    if isinstance(value, list):
        return [_portable(item, manifest) for item in value]
    if root and isinstance(value, str) and (value == root or value.startswith(root + "/")):
        return "<output_root>" + value[len(root) :]
    return value
