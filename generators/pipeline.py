"""Plan a release and generate its shards into a staging folder.

The same functions run under Airflow (one mapped task per shard) and from the
`corpusforge` command line. Each step reads and writes files in the staging
folder only, so a retried step rewrites its own files and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusforge.generators import layout
from corpusforge.generators.base import PlanContext, ResolvedSource, ShardContext, ShardTask
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.llm.usage import collect_usage
from corpusforge.generators.registry import get_builder
from corpusforge.generators.seeding import derive_seed
from corpusforge.generators.shard_writer import write_shard
from corpusforge.generators.sources import parse_source

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1000
MAX_SHARD_SIZE = 1_000_000
# Dates inside the data come from the release, never from the clock. Release
# keys that are not dates fall back to this fixed reference date.
DEFAULT_REFERENCE_DATE = "2025-01-01"


@dataclass
class BuildParams:
    """Parameters shared by every dataset; `options` holds dataset-specific ones."""

    dataset: str
    release: str | None = None
    seed: int | None = None
    output_root: str = "published"
    sources: list[str] | None = None
    limit: int | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    options: dict[str, Any] = field(default_factory=dict)
    # Language-model settings (see corpusforge.generators.llm.settings), stored as option `llm`.
    llm: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunInfo:
    """Facts about the run that started the build; they stay out of the content fingerprint."""

    run_id: str | None = None
    logical_date: str | None = None
    started_at: str = field(default_factory=lambda: _utc_now())


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def resolve_release_key(params: BuildParams, run: RunInfo) -> str:
    """Return the release key: the parameter, else the logical date, else the run id."""
    if params.release:
        return layout.check_release_key(params.release)
    if run.logical_date:
        return run.logical_date[:10]
    if run.run_id:
        return layout.sanitize_release_key(run.run_id)
    raise ConfigError("no release key: pass a release, or run with a logical date or run id")


def reference_date_for(release: str, options: dict[str, Any]) -> str:
    """Return the date the data is anchored to: the release if it starts with a date."""
    if options.get("reference_date"):
        return str(dt.date.fromisoformat(str(options["reference_date"])))
    try:
        return str(dt.date.fromisoformat(release[:10]))
    except ValueError:
        return DEFAULT_REFERENCE_DATE


def _check_params(params: BuildParams) -> None:
    if params.limit is not None and (not isinstance(params.limit, int) or params.limit < 1):
        raise ConfigError(f"invalid limit {params.limit!r}: use a positive integer or null")
    size = params.shard_size
    if not isinstance(size, int) or not 1 <= size <= MAX_SHARD_SIZE:
        raise ConfigError(f"invalid shard_size {size!r}: use an integer from 1 to {MAX_SHARD_SIZE}")
    if params.seed is not None and (not isinstance(params.seed, int) or params.seed < 0):
        raise ConfigError(f"invalid seed {params.seed!r}: use a non-negative integer")


def plan_release(params: BuildParams, run: RunInfo | None = None) -> Path:
    """Resolve sources, split the release into shards and write `plan.json`.

    Returns the new staging folder. Structural problems in the sources raise
    SourceError here, before any shard runs.
    """
    run = run or RunInfo()
    _check_params(params)
    builder = get_builder(params.dataset)
    release = resolve_release_key(params, run)
    seed = params.seed if params.seed is not None else derive_seed(params.dataset, release) % 2**31
    options = {**builder.default_options(), **params.options}
    unknown = sorted(set(params.options) - set(builder.default_options()) - {"reference_date"})
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for dataset {params.dataset!r}; "
            f"known: {sorted(builder.default_options())}"
        )
    reference_date = reference_date_for(release, options)
    llm = LLMSettings.from_json(params.llm).with_cache_under(params.output_root)
    options["llm"] = llm.to_json()

    source_texts = params.sources or builder.default_sources()
    if not source_texts:
        raise ConfigError("sources is empty: give at least one 'format:path' entry")
    resolved = []
    for text in source_texts:
        spec = parse_source(text, builder.formats)
        path, name, sha256 = builder.resolve_source(spec.format, spec.path, spec.options)
        resolved.append(ResolvedSource(text, spec.format, path, name, spec.options, sha256))

    context = PlanContext(
        dataset=params.dataset,
        release=release,
        seed=seed,
        reference_date=reference_date,
        sources=resolved,
        limit=params.limit,
        shard_size=params.shard_size,
        options=options,
    )
    shards = builder.plan(context)
    for expected, shard in enumerate(shards):
        if shard.index != expected:
            raise RuntimeError(
                f"builder {params.dataset} numbered shard {shard.index} at {expected}"
            )
        layout.check_name("config", shard.config)
        layout.check_name("split", shard.split)

    attempt = f"{release}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
    staging = layout.dataset_dir(params.output_root, params.dataset) / layout.STAGING_DIR / attempt
    (staging / "parts").mkdir(parents=True)
    plan = {
        "dataset": params.dataset,
        "release": release,
        "seed": seed,
        "reference_date": reference_date,
        "parameters": {
            "release": release,
            "seed": seed,
            "sources": list(source_texts),
            "limit": params.limit,
            "shard_size": params.shard_size,
            "options": options,
        },
        "output_root": str(Path(params.output_root).resolve()),
        "sources": [source.to_json() for source in resolved],
        "shards": [shard.to_json() for shard in shards],
        "run": {
            "run_id": run.run_id,
            "logical_date": run.logical_date,
            "started_at": run.started_at,
            "ordered_at": run.logical_date or run.started_at,
        },
        "attempt": attempt,
    }
    _write_json(staging / "plan.json", plan)
    log.info(
        "planned %s release %s: %d shards from %d sources, staging %s",
        params.dataset,
        release,
        len(shards),
        len(resolved),
        staging,
    )
    return staging


def load_plan(staging: str | Path) -> dict[str, Any]:
    path = Path(staging) / "plan.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"no plan.json in {staging}: is this a staging folder?") from error


def generate_shard(staging: str | Path, index: int) -> dict[str, Any]:
    """Generate shard `index` of a planned release and write its part, quarantine and stats.

    Rerunning a shard replaces its files, so a task retry never appends rows.
    """
    staging = Path(staging)
    plan = load_plan(staging)
    shards = plan["shards"]
    if not 0 <= index < len(shards):
        raise ConfigError(f"shard index {index} out of range: the plan has {len(shards)} shards")
    builder = get_builder(plan["dataset"])
    task = ShardTask.from_json(shards[index])
    context = ShardContext(
        dataset=plan["dataset"],
        release=plan["release"],
        seed=plan["seed"],
        reference_date=plan["reference_date"],
        sources=[ResolvedSource.from_json(source) for source in plan["sources"]],
        limit=plan["parameters"]["limit"],
        options=plan["parameters"]["options"],
        shard=task,
        num_shards=len(shards),
    )
    started = time.monotonic()
    log.info("shard %d of %d: generating %s/%s", index + 1, len(shards), task.config, task.split)
    with collect_usage() as llm_usage:
        stats = write_shard(staging, context, builder.generate(context))
    if llm_usage.used:
        stats["llm"] = llm_usage.to_json()
    stats["seconds"] = round(time.monotonic() - started, 3)
    rate = stats["rows"] / stats["seconds"] if stats["seconds"] else 0.0
    log.info(
        "shard %d of %d: %d rows, %d quarantined, %.0f rows/s",
        index + 1,
        len(shards),
        stats["rows"],
        sum(stats["quarantined"].values()),
        rate,
    )
    _write_json(staging / "parts" / f"{layout.part_name(index)}.json", stats)
    return stats


def quarantine_counts(staging: str | Path) -> Counter:
    """Return quarantined records by reason over every generated shard."""
    counts: Counter = Counter()
    for stats_file in sorted((Path(staging) / "parts").glob("shard-*.json")):
        counts.update(json.loads(stats_file.read_text())["quarantined"])
    return counts


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
