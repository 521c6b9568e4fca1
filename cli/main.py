"""Entry point of the `corpusforge` program. It runs the same library code as the DAGs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from corpusforge.generators.errors import CorpusforgeError

log = logging.getLogger("corpusforge.main")

# An empty $CORPUSFORGE_OUTPUT_ROOT counts as unset, as it does for the DAGs.
DEFAULT_OUTPUT_ROOT = os.environ.get("CORPUSFORGE_OUTPUT_ROOT") or "published"


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid option {text!r}: expected key=value")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _below_warning_from_gx(record: logging.LogRecord) -> bool:
    """Return False for a Great Expectations log record below WARNING, so handlers drop it."""
    return record.levelno >= logging.WARNING or not record.name.startswith("great_expectations")


def _quiet_great_expectations() -> None:
    """Drop Great Expectations log records below WARNING.

    Great Expectations logs hundreds of INFO lines per validation, such as "Skipping
    registering function ... because it is a closure". Setting the level of its root
    logger is not enough, because great_expectations.data_context.types.base sets
    its own logger to INFO when it is imported (Great Expectations 1.x), so the
    handlers filter the records too.
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if _below_warning_from_gx not in handler.filters:
            handler.addFilter(_below_warning_from_gx)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corpusforge",
        description="Build, list, show, verify and export corpusforge dataset releases.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_root(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--output-root",
            default=DEFAULT_OUTPUT_ROOT,
            help=(
                "folder or fsspec URL (s3://, gs://, memory://) of the releases "
                "(default: $CORPUSFORGE_OUTPUT_ROOT or ./published)"
            ),
        )

    build = commands.add_parser("build", help="build and publish a dataset without a scheduler")
    build.add_argument("dataset")
    build.add_argument("--release", help="release key (default: manual-<UTC time>)")
    build.add_argument("--seed", type=int, help="random seed (default: derived from the release)")
    build.add_argument(
        "--source",
        action="append",
        dest="sources",
        help="source as 'format:path?key=value'; repeat for several (default: embedded input)",
    )
    build.add_argument("--limit", type=int, help="records to read per source")
    build.add_argument("--shard-size", type=int, default=1000, help="source records per shard")
    build.add_argument(
        "--option", action="append", type=_option, default=[], help="dataset option key=value"
    )
    build.add_argument(
        "--llm-backend",
        choices=["offline", "openai"],
        help="language-model backend (default: offline); openai sends requests to "
        "$OPENAI_BASE_URL with $OPENAI_API_KEY",
    )
    build.add_argument(
        "--llm-model", help="model name the endpoint serves; required with --llm-backend openai"
    )
    build.add_argument(
        "--llm-option",
        action="append",
        type=_option,
        default=[],
        help="language-model setting key=value, such as mode=batch or concurrency=32 "
        "(settings in the README)",
    )
    build.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that generate shards, 1 or more (default: 1)",
    )
    build.add_argument(
        "--shard-order",
        choices=["sequential", "reverse", "shuffled"],
        default="sequential",
        help="order in which shards run; the output does not depend on it",
    )
    add_root(build)

    releases = commands.add_parser("releases", help="list a dataset's releases")
    releases.add_argument("dataset")
    add_root(releases)

    show = commands.add_parser("show", help="summarize one release (default: LATEST)")
    show.add_argument("dataset")
    show.add_argument("release", nargs="?")
    show.add_argument("--brief", action="store_true", help="print one line per split")
    show.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_root(show)

    verify = commands.add_parser(
        "verify",
        help="check a release's files against its manifest; exit 1 on a problem",
        description=(
            "Recompute the size and sha256 of every shard and every other file listed in "
            "manifest.json (the dataset card README.md, plan.json, quarantine/ and "
            "validation/), report missing files and files the manifest does not list, and "
            "recompute the manifest's content_fingerprint. A manifest written before "
            "corpusforge stored the checksums of the other files gets the shard checks only, "
            "and the files it cannot check are listed. Exit 0 when the release is intact, "
            "1 on a problem, on a missing or invalid manifest.json, or when LATEST names a "
            "release that is not published."
        ),
    )
    verify.add_argument("dataset")
    verify.add_argument("release", nargs="?")
    add_root(verify)

    prune = commands.add_parser(
        "prune", help="remove old releases and abandoned staging folders, never LATEST"
    )
    prune.add_argument("dataset")
    prune.add_argument(
        "--keep",
        type=int,
        required=True,
        help="number of newest releases to keep, ordered as LATEST is (1 or more)",
    )
    prune.add_argument(
        "--staging-max-age",
        type=float,
        default=24.0,
        help="hours without a write after which a staging or unlinked attempt folder is "
        "abandoned (default: 24)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="print what would be removed; remove nothing"
    )
    add_root(prune)

    export = commands.add_parser("export", help="write a release in another layout")
    export.add_argument("dataset")
    export.add_argument("release", nargs="?")
    export.add_argument(
        "--format",
        required=True,
        choices=["verl", "med-mim-json"],
        help="verl: stephint as verl RL Parquet; med-mim-json: med_mim in the Med-MIM JSON layout",
    )
    export.add_argument("--out", required=True, type=Path, help="output folder")
    export.add_argument(
        "--include-answer-hints",
        action="store_true",
        help="keep hint levels whose text already states the reference answer",
    )
    add_root(export)

    score = commands.add_parser(
        "score", help="score a model's predictions on a release's evaluation records"
    )
    score.add_argument("dataset", choices=["mllmu_med"])
    score.add_argument("--release", help="release key (default: LATEST)")
    score.add_argument(
        "--predictions",
        required=True,
        type=Path,
        help="JSON object of record id to answer (optionally grouped by split), or JSONL "
        "with 'id' and 'prediction'",
    )
    score.add_argument(
        "--config",
        default="forget_05",
        choices=["forget_05", "forget_10", "forget_15"],
        help="forget config whose forget, retain, test and real splits are scored",
    )
    score.add_argument("--ues", default="harmonic_v1", help="unlearning efficiency score formula")
    score.add_argument("--out", type=Path, help="also write the JSON report to this file")
    add_root(score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        _quiet_great_expectations()
        # The HTTP clients under `openai` log one INFO line per request.
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from corpusforge import commands

    handler = getattr(commands, f"run_{args.command}")
    try:
        code = handler(args)
        # Flush here, so that a closed pipe raises inside this block.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader of stdout exited early, as `head` does. As the "Note on SIGPIPE"
        # of Python's signal module documentation recommends, point stdout at
        # devnull so that the flush at exit does not raise again, and exit with 1.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except CorpusforgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit_code(error)
    except KeyboardInterrupt:
        print("interrupted; the previous release is unchanged", file=sys.stderr)
        return 130
    except Exception as error:
        # An error this program does not anticipate, such as an unreachable object
        # store (botocore's EndpointConnectionError): one line, the traceback with -v.
        if args.verbose:
            raise
        print(
            f"error: {type(error).__name__}: {error}. {_store_hint(error)}"
            "Run again with -v for the traceback.",
            file=sys.stderr,
        )
        return 1


def _exit_code(error: CorpusforgeError) -> int:
    """Return 1 for a damaged release or LATEST file, and 2 for bad input."""
    from corpusforge.generators.store import DamagedReleaseError, MissingLatestError

    return 1 if isinstance(error, DamagedReleaseError | MissingLatestError) else 2


def _store_hint(error: BaseException) -> str:
    """Return where S3 credentials come from when botocore's NoCredentialsError caused `error`."""
    try:
        from botocore.exceptions import NoCredentialsError
    except ImportError:
        return ""
    seen = set()
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, NoCredentialsError):
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
        if cause is not None and id(cause) in seen:
            cause = None
    if cause is None:
        return ""
    return (
        "The S3 driver (s3fs) found no credentials: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in ~/.aws/credentials, and "
        "AWS_ENDPOINT_URL_S3 for an S3-compatible server other than AWS; see "
        '"Object storage" in the README. '
    )
