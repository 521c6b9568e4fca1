"""Plan a release and generate its shards into a staging folder.

The same functions run under Airflow (one mapped task per shard) and from the
`corpusforge` command line. Each step reads and writes files in the staging
folder only, so a retried step rewrites its own files and nothing else.

`plan.json` lists every shard by index, config and split. The units of work of
shard N, which grow with the release, are in `parts/units-NNNNN.json`, so a
shard task reads only its own units and its memory does not grow with the
release. Publishing removes `parts/` with them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from upath import UPath

from corpusforge.generators import layout, objstore
from corpusforge.generators.base import PlanContext, ResolvedSource, ShardContext, ShardTask
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.faults import crash_point
from corpusforge.generators.llm.settings import DEFAULT_CACHE_DIR, LLMSettings
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


def plan_release(params: BuildParams, run: RunInfo | None = None) -> objstore.Location:
    """Resolve sources, split the release into shards and write `plan.json`.

    Returns the new staging folder: a Path under `.staging/` for a local output
    root, or a UPath of the attempt folder under `.releases/` for an object
    store, where shards are staged in place because a folder cannot be renamed.
    Structural problems in the sources raise SourceError here, before any shard runs.
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
    root = objstore.location(params.output_root)
    llm = LLMSettings.from_json(params.llm)
    if isinstance(root, UPath) and not llm.cache:
        llm = replace(llm, cache=str(root / DEFAULT_CACHE_DIR))
    llm = llm.with_cache_under(root)
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
    dataset_dir = layout.dataset_dir(root, params.dataset)
    if isinstance(dataset_dir, UPath):
        staging = dataset_dir / layout.RELEASES_DIR / attempt
    else:
        staging = dataset_dir / layout.STAGING_DIR / attempt
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
        "output_root": str(root) if isinstance(root, UPath) else str(root.resolve()),
        "sources": [source.to_json() for source in resolved],
        "shards": [
            {
                "index": shard.index,
                "config": shard.config,
                "split": shard.split,
                "work": shard.work,
            }
            for shard in shards
        ],
        "run": {
            "run_id": run.run_id,
            "logical_date": run.logical_date,
            "started_at": run.started_at,
            "ordered_at": run.logical_date or run.started_at,
        },
        "attempt": attempt,
    }
    for shard in shards:
        _write_units(staging / "parts" / units_name(shard.index), shard.units)
    # plan.json goes last: a staging folder with a plan has the units of every shard.
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


def units_name(index: int) -> str:
    """Return the file name, under `parts/`, of the planned units of shard `index`."""
    return f"units-{index:05d}.json"


def load_plan(staging: str | Path | UPath, with_units: bool = False) -> dict[str, Any]:
    """Read `plan.json`. With `with_units`, also put each shard's units into its entry.

    The units of every shard can take tens of MB at paper scale, so only tools
    that inspect the whole plan should ask for them.
    """
    folder = objstore.location(staging)
    try:
        if isinstance(folder, UPath):
            plan = objstore.read_json(folder / "plan.json")
        else:
            plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"no plan.json in {staging}: is this a staging folder?") from error
    if with_units:
        for entry in plan["shards"]:
            entry["units"] = load_units(folder, entry)
    return plan


def load_units(staging: Path | UPath, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the units of the plan entry `entry`, from its units file.

    Plans written before the units moved to files of their own carry them in
    the entry, and those are returned as they are.
    """
    if "units" in entry:
        return entry["units"]
    path = staging / "parts" / units_name(entry["index"])
    try:
        if isinstance(path, UPath):
            return objstore.read_json(path)
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(
            f"{path} not found: the staging folder lacks the units of shard {entry['index']}, "
            "so plan the release again"
        ) from error


def check_max_generate_tasks(value: Any) -> None:
    """Raise ConfigError unless `value` is None or a positive integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"invalid max_generate_tasks {value!r}: use a positive integer")


def group_shards(plan: dict[str, Any], max_groups: int | None) -> list[list[int]]:
    """Split the shards of `plan` into at most `max_groups` groups of about equal work.

    Airflow pays about a second per task, so a release of many small shards runs
    faster as a few tasks that generate several shards each. A shard's work is
    its plan entry's `work` (see ShardTask.work; 1 in older plans). Shards
    are placed heaviest first, each in the group with the least work so far
    (ties: lowest index), so the same plan always gives the same groups. Each
    group lists its shards in index order, and groups come in the order of their
    first shard. `max_groups` of None gives one group per shard. Grouping changes
    only which task writes a shard, never its bytes.
    """
    shards = plan["shards"]
    check_max_generate_tasks(max_groups)
    if max_groups is None or max_groups >= len(shards):
        return [[entry["index"]] for entry in shards]
    weights = {entry["index"]: max(1, int(entry.get("work", 1))) for entry in shards}
    groups: list[list[int]] = [[] for _ in range(max_groups)]
    loads = [0] * max_groups
    for index in sorted(weights, key=lambda i: (-weights[i], i)):
        lightest = min(range(max_groups), key=lambda g: (loads[g], g))
        groups[lightest].append(index)
        loads[lightest] += weights[index]
    return sorted((sorted(group) for group in groups if group), key=lambda group: group[0])


def generate_shard(staging: str | Path | UPath, index: int) -> dict[str, Any]:
    """Generate shard `index` of a planned release and write its part, quarantine and stats.

    Rerunning a shard replaces its files, so a task retry never appends rows.
    A remote staging folder gets the files generated in a local temporary folder.
    """
    folder = objstore.location(staging)
    if isinstance(folder, UPath):
        return _generate_remote_shard(folder, index)
    return _generate_local_shard(folder, index)


def _generate_remote_shard(staging: UPath, index: int) -> dict[str, Any]:
    """Generate a shard locally, then upload its part and quarantine file, and its stats last.

    The stats object marks the shard as done, so it is removed before the new
    files go up: a retry killed midway leaves a shard that validation reports as
    not generated, never old stats next to a new part.
    """
    plan = load_plan(staging)
    task = _shard_task(staging, plan, index)
    name = layout.part_name(index)
    with tempfile.TemporaryDirectory(prefix=f"corpusforge-{name}-") as tmp:
        local = Path(tmp)
        (local / "parts").mkdir()
        stats = _write_shard_files(local, plan, task)

        objstore.remove(staging / "parts" / f"{name}.json")
        part = staging / "parts" / f"{name}.parquet"
        if stats["file"]:
            objstore.put_file(local / stats["file"], part)
        else:
            objstore.remove(part)
        crash_point("after_part_upload")
        quarantine = staging / "quarantine" / f"{name}.jsonl"
        if stats["quarantine_file"]:
            objstore.put_file(local / stats["quarantine_file"], quarantine)
        else:
            objstore.remove(quarantine)
        objstore.put_file(local / "parts" / f"{name}.json", staging / "parts" / f"{name}.json")
    return stats


def _generate_local_shard(staging: Path, index: int) -> dict[str, Any]:
    plan = load_plan(staging)
    return _write_shard_files(staging, plan, _shard_task(staging, plan, index))


def _shard_task(staging: Path | UPath, plan: dict[str, Any], index: int) -> ShardTask:
    """Return shard `index` of `plan` with its units, read from the staging folder."""
    shards = plan["shards"]
    if not 0 <= index < len(shards):
        raise ConfigError(f"shard index {index} out of range: the plan has {len(shards)} shards")
    entry = shards[index]
    return ShardTask(entry["index"], entry["config"], entry["split"], load_units(staging, entry))


def _write_shard_files(folder: Path, plan: dict[str, Any], task: ShardTask) -> dict[str, Any]:
    """Generate `task` into `folder`: its part, quarantine file and stats json."""
    builder = get_builder(plan["dataset"])
    num_shards = len(plan["shards"])
    context = ShardContext(
        dataset=plan["dataset"],
        release=plan["release"],
        seed=plan["seed"],
        reference_date=plan["reference_date"],
        sources=[ResolvedSource.from_json(source) for source in plan["sources"]],
        limit=plan["parameters"]["limit"],
        options=plan["parameters"]["options"],
        shard=task,
        num_shards=num_shards,
    )
    index = task.index
    started = time.monotonic()
    log.info("shard %d of %d: generating %s/%s", index + 1, num_shards, task.config, task.split)
    with collect_usage() as llm_usage:
        stats = write_shard(folder, context, builder.generate(context))
    if llm_usage.used:
        stats["llm"] = llm_usage.to_json()
    stats["seconds"] = round(time.monotonic() - started, 3)
    rate = stats["rows"] / stats["seconds"] if stats["seconds"] else 0.0
    log.info(
        "shard %d of %d: %d rows, %d quarantined, %.0f rows/s",
        index + 1,
        num_shards,
        stats["rows"],
        sum(stats["quarantined"].values()),
        rate,
    )
    _write_json(folder / "parts" / f"{layout.part_name(index)}.json", stats)
    return stats


def quarantine_counts(staging: str | Path | UPath) -> Counter:
    """Return quarantined records by reason over every generated shard."""
    counts: Counter = Counter()
    for stats_file in sorted(objstore.location(staging).joinpath("parts").glob("shard-*.json")):
        counts.update(json.loads(stats_file.read_text())["quarantined"])
    return counts


@contextlib.contextmanager
def local_staging(staging: str | Path | UPath) -> Iterator[Path]:
    """Yield a local folder with the staged files, for checks that read local files.

    A local staging folder is yielded as it is. A remote one is downloaded to a
    temporary folder (without `validation/`), and whatever the block writes
    under `validation/` is uploaded back, also when the block raises, so failed
    contract results are on the store too.
    """
    folder = objstore.location(staging)
    if not isinstance(folder, UPath):
        yield folder
        return
    with objstore.local_copy(folder, "corpusforge-staging-", skip=("validation",)) as local:
        try:
            yield local
        finally:
            if (local / "validation").is_dir():
                objstore.remove(folder / "validation", recursive=True)
                objstore.upload(local / "validation", folder / "validation")


def _write_units(path: Path | UPath, units: list[dict[str, Any]]) -> None:
    # Compact JSON, because with `indent` the json module uses its pure-Python
    # encoder instead of the C one. Keys are sorted as plan.json had them, so
    # builders see the units exactly as before.
    text = json.dumps(units, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if isinstance(path, UPath):
        objstore.write_bytes(path, text.encode("utf-8"))
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path: Path | UPath, data: Any) -> None:
    if isinstance(path, UPath):
        objstore.write_json(path, data)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
