"""The `corpusforge` subcommands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from corpusforge.generators import layout, objstore, store
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    local_staging,
    plan_release,
)
from corpusforge.generators.publish import publish_release

log = logging.getLogger("corpusforge.main")


def _progress(total: int):
    """Return a progress bar on a terminal, and None elsewhere (plain log lines then)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="shard", file=sys.stderr)


def run_build(args: argparse.Namespace) -> int:
    from corpusforge.data_contracts import validate_staging

    if args.workers < 1:
        raise ConfigError(f"invalid --workers {args.workers}: use 1 or more processes")
    _check_output_root(args, building=True)
    now = dt.datetime.now(dt.UTC)
    params = BuildParams(
        dataset=args.dataset,
        release=args.release or f"manual-{now:%Y%m%dT%H%M%S}",
        seed=args.seed,
        output_root=args.output_root,
        sources=args.sources,
        limit=args.limit,
        shard_size=args.shard_size,
        options=dict(args.option),
        llm=_llm_settings(args),
    )
    staging = plan_release(params, RunInfo(run_id=None, started_at=now.isoformat()))
    num_shards = len(load_plan(staging)["shards"])
    order = list(range(num_shards))
    if args.shard_order == "reverse":
        order.reverse()
    elif args.shard_order == "shuffled":
        random.Random().shuffle(order)

    bar = _progress(num_shards)
    rows = 0
    if bar is not None and args.workers <= 1:
        _show_llm_progress(bar)
    if args.workers <= 1:
        for done, index in enumerate(order, start=1):
            rows += generate_shard(staging, index)["rows"]
            _report(bar, done, num_shards, rows)
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(generate_shard, str(staging), index) for index in order]
            for done, future in enumerate(as_completed(futures), start=1):
                rows += future.result()["rows"]
                _report(bar, done, num_shards, rows)
    if bar is not None:
        bar.close()

    with local_staging(staging) as local:
        validate_staging(local)
    published = publish_release(staging)
    print(json.dumps(published.to_json(), indent=2))
    return 0


def _llm_settings(args: argparse.Namespace) -> dict[str, object]:
    settings = dict(args.llm_option)
    if args.llm_backend:
        settings["backend"] = args.llm_backend
    if args.llm_model:
        settings["model"] = args.llm_model
    return settings


def _show_llm_progress(bar) -> None:
    """Show the language-model requests of the running shard on the bar, twice a second at most."""
    from corpusforge.generators.llm import progress

    last_update = {"at": 0.0}

    def show(snapshot: progress.ProgressSnapshot) -> None:
        now = time.monotonic()
        if now - last_update["at"] >= 0.5 or snapshot.done == snapshot.total:
            last_update["at"] = now
            bar.set_postfix_str(snapshot.describe())

    progress.set_listener(show)


def _report(bar, done: int, total: int, rows: int) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix(rows=rows)
    else:
        log.info("generated shard %d of %d (%d rows so far)", done, total, rows)


def _check_output_root(args: argparse.Namespace, building: bool = False) -> None:
    """Raise ConfigError when --output-root is empty or is not a local root of releases.

    A missing folder is usually a typo, and a folder that contains LATEST,
    .releases or .staging directly is a dataset folder given in place of its parent.
    `build` creates a missing root, so with `building` only the other checks apply.
    """
    meant = "to publish under" if building else "that the releases were built under"
    if not str(args.output_root).strip():
        raise ConfigError(
            "the output root is empty; pass --output-root (or set $CORPUSFORGE_OUTPUT_ROOT) "
            f"with the folder or URL {meant}"
        )
    root = objstore.location(args.output_root)
    if not isinstance(root, Path):
        return
    if not root.exists():
        if building:
            return
        raise ConfigError(
            f"output root {root} does not exist; pass the --output-root (or set "
            f"$CORPUSFORGE_OUTPUT_ROOT) {meant}"
        )
    if not root.is_dir():
        raise ConfigError(
            f"output root {root} is a file, not a folder; pass the --output-root (or set "
            f"$CORPUSFORGE_OUTPUT_ROOT) {meant}"
        )
    if (root / args.dataset).exists():
        return
    markers = [
        name
        for name in (layout.LATEST, layout.RELEASES_DIR, layout.STAGING_DIR)
        if (root / name).exists()
    ]
    if markers:
        raise ConfigError(
            f"output root {root} looks like a dataset folder, because it contains "
            f"{' and '.join(markers)}; pass its parent {root.absolute().parent} as --output-root"
        )


def run_releases(args: argparse.Namespace) -> int:
    _check_output_root(args)
    releases = store.list_releases(args.output_root, args.dataset)
    latest_problem = store.latest_problem(args.output_root, args.dataset, releases)
    if not releases:
        print(f"no releases of {args.dataset} under {args.output_root}")
    else:
        print(f"{'release':<32} {'rows':>10}  {'ordered at':<32} fingerprint")
    damaged = 0
    for info in releases:
        mark = "  (LATEST)" if info.latest else ""
        if info.problem:
            damaged += 1
            print(f"{info.release:<32} FAILED {info.problem}{mark}")
            continue
        print(
            f"{info.release:<32} {info.num_rows:>10}  {info.ordered_at:<32} "
            f"{info.content_fingerprint[:16]}{mark}"
        )
    if latest_problem:
        print(f"{layout.LATEST:<32} FAILED {latest_problem}")
    if damaged:
        print(
            f"{damaged} damaged release(s) of {args.dataset}: run `corpusforge verify` on them, "
            "then build them again or remove them"
        )
    return 1 if damaged or latest_problem else 0


def run_show(args: argparse.Namespace) -> int:
    _check_output_root(args)
    path = store.release_dir(args.output_root, args.dataset, args.release)
    manifest = store.load_manifest(path)
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    where = path.absolute() if isinstance(path, Path) else path
    print(f"{manifest['dataset']} release {manifest['release']} at {where}")
    for config, splits in sorted(manifest["splits"].items()):
        for split, rows in sorted(splits.items()):
            print(f"  {config}/{split}: {rows} rows")
    quarantine = manifest["quarantine"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in quarantine["by_reason"].items())
    print(f"  quarantined: {quarantine['total']}" + (f" ({reasons})" if reasons else ""))
    if args.brief:
        return 0
    print(f"  seed {manifest['seed']}, reference date {manifest['reference_date']}")
    print(f"  content fingerprint {manifest['content_fingerprint']}")
    print(f"  schema {manifest['schema']['version']}, contract {manifest['contract']['version']}")
    print(f"  created {manifest['created_at']}, code {manifest['code_revision']}")
    for source in manifest["sources"]:
        print(f"  source {source['format']}:{source['name']} sha256 {source['sha256'][:16]}")
    summary_path = path / "validation" / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        print(f"  contract results: {'passed' if summary.get('success') else 'FAILED'}")
        rules = summary.get("rules", {})
        failed = {name: rule for name, rule in rules.items() if not rule.get("passed")}
        print(f"    {len(rules) - len(failed)} of {len(rules)} rules passed")
        for name, rule in failed.items():
            print(f"    {name}: FAILED on {rule.get('failed_rows')} rows")
    for shard in manifest["shards"]:
        print(f"  {shard['path']}: {shard['rows']} rows, {shard['bytes']} bytes")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    _check_output_root(args)
    try:
        path = store.release_dir(args.output_root, args.dataset, args.release)
        check = store.check_release(path)
        manifest = store.load_manifest(path)
    except (store.DamagedReleaseError, store.MissingLatestError) as error:
        print(f"FAILED {error}")
        print(f"1 problem(s) in {args.dataset} release {args.release or 'LATEST'}")
        return 1
    for problem in check.problems:
        print(f"FAILED {problem}")
    if check.unchecked:
        print(
            f"NOTE: manifest.json has no checksums of files other than shards, because an "
            f"older corpusforge published the release, so {len(check.unchecked)} file(s) "
            f"were not checked: {_first_names(check.unchecked)}"
        )
    if check.problems:
        print(f"{len(check.problems)} problem(s) in {args.dataset} release {manifest['release']}")
        return 1
    checked = f"{len(manifest['shards'])} shards"
    if not check.unchecked:
        checked += f" and {check.checked_files} other files"
    print(f"OK {checked} of {args.dataset} release {manifest['release']}")
    return 0


def _first_names(names: list[str], limit: int = 10) -> str:
    """Return the first `limit` names comma-separated, with the count of the rest."""
    listed = ", ".join(names[:limit])
    rest = len(names) - limit
    return f"{listed} and {rest} more" if rest > 0 else listed


def run_prune(args: argparse.Namespace) -> int:
    from corpusforge.generators.retention import prune

    _check_output_root(args)
    if args.staging_max_age < 0:
        raise ConfigError(f"invalid --staging-max-age {args.staging_max_age}: use 0 or more hours")
    result = prune(
        args.output_root,
        args.dataset,
        keep=args.keep,
        max_age=dt.timedelta(hours=args.staging_max_age),
        dry_run=args.dry_run,
    )
    verb = "would remove" if args.dry_run else "removed"
    for name in result.removed_releases:
        print(f"{verb} release {name}")
    for name in result.removed_attempts:
        print(f"{verb} unlinked attempt folder .releases/{name}")
    for name in result.removed_staging:
        print(f"{verb} staging folder .staging/{name}")
    print(f"kept {len(result.kept)} release(s): {', '.join(result.kept) or 'none'}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    _check_output_root(args)
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder, new or existing")
    if args.format == "med-mim-json" and args.dataset != "med_mim":
        raise ConfigError(f"--format med-mim-json exports the med_mim dataset, not {args.dataset}")
    if args.format == "verl" and args.dataset != "stephint":
        raise ConfigError(
            f"--format {args.format} exports the stephint dataset, not {args.dataset}"
        )
    path = store.release_dir(args.output_root, args.dataset, args.release)
    # Created after the release is found, so that a wrong release leaves no empty folder.
    _make_out_folder(args.out)
    if args.format == "med-mim-json":
        from corpusforge.generators.med_mim.export import export_med_mim_json

        with store.local_release(path) as local:
            print(json.dumps(export_med_mim_json(local, args.out), indent=2))
        return 0
    from corpusforge.generators.stephint.verl import export_verl

    with store.local_release(path) as local:
        result = export_verl(local, args.out, include_answer_hints=args.include_answer_hints)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _make_out_folder(out: Path) -> None:
    """Create the --out folder, or raise ConfigError naming the path that prevents it."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(
            f"--out {out}: {existing} is a file, not a folder; give a folder whose parents "
            "are folders"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--out {out}: cannot create the folder ({error.strerror}); give a folder that "
            "you can write to, new or existing"
        ) from error
    if not os.access(out, os.W_OK):
        raise ConfigError(
            f"--out {out}: the folder is not writable; give a folder that you can write to, "
            "new or existing"
        )


def run_score(args: argparse.Namespace) -> int:
    from corpusforge.generators.mllmu_med.scoring import read_predictions, score_release

    _check_output_root(args)
    _check_predictions(args.predictions)
    if args.out is not None:
        _check_report_file(args.out)
    path = store.release_dir(args.output_root, args.dataset, args.release)
    with store.local_release(path) as local:
        report = score_release(local, read_predictions(args.predictions), args.config, args.ues)
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def _check_predictions(path: Path) -> None:
    """Raise ConfigError when the predictions file is empty or contains only whitespace.

    The JSON parser would report such a file as invalid JSON at line 1.
    """
    if path.is_file() and not path.read_bytes().strip():
        raise ConfigError(
            f"predictions file {path} is empty; write a JSON object that maps each record id "
            "to its predicted answer, "
            "or JSONL with 'id' and 'prediction' per line"
        )


def _check_report_file(out: Path) -> None:
    """Raise ConfigError before scoring when the --out report file cannot be written."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the path of the JSON report file")
    if not out.parent.is_dir():
        raise ConfigError(
            f"--out {out}: the folder {out.parent} does not exist; create it first or give "
            "another report file"
        )
    if not os.access(out.parent, os.W_OK):
        raise ConfigError(
            f"--out {out}: the folder {out.parent} is not writable; give another report file"
        )
