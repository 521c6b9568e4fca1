"""Profile the generation of one StepHint shard with cProfile.

The script plans a release from `synthetic_math:?count=N` in a temporary output
root. It first generates a small shard of another release, so that lazy imports
(pandas, SymPy's parser) stay out of the profile. Then it profiles
`generate_shard` on the chosen shard and prints the functions with the highest
cumulative and own time.

Usage:
    .venv/bin/python bench/profile_stephint_shard.py --records 1000 --shard 0 \\
        --stats /tmp/stephint-shard.prof
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from corpusforge.generators.pipeline import BuildParams, RunInfo, generate_shard, plan_release

# Records of the warm-up shard; its seed differs from the profiled release's seed.
WARMUP_RECORDS = 50


def _plan(output_root: Path, records: int, seed: int, shard_size: int) -> Path:
    params = BuildParams(
        dataset="stephint",
        release=f"profile-{seed}",
        seed=seed,
        output_root=str(output_root),
        sources=[f"synthetic_math:?count={records}"],
        shard_size=shard_size,
    )
    return plan_release(params, RunInfo(run_id="stephint-profile"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000, help="synthetic source records")
    parser.add_argument("--shard", type=int, default=0, help="index of the shard to profile")
    parser.add_argument("--shard-size", type=int, default=1000, help="source records per shard")
    parser.add_argument("--seed", type=int, default=1, help="release seed")
    parser.add_argument("--top", type=int, default=30, help="functions listed per ordering")
    parser.add_argument("--stats", type=Path, help="also write the raw cProfile data here")
    args = parser.parse_args(argv)

    work_dir = Path(tempfile.mkdtemp(prefix="stephint-profile-"))
    try:
        warmup = _plan(work_dir, WARMUP_RECORDS, args.seed + 1, args.shard_size)
        generate_shard(warmup, 0)
        staging = _plan(work_dir, args.records, args.seed, args.shard_size)

        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        stats = generate_shard(staging, args.shard)
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    print(f"shard {args.shard}: {stats['rows']} rows in {seconds:.2f} s under cProfile")
    if args.stats:
        profiler.dump_stats(args.stats)
    report = pstats.Stats(profiler, stream=sys.stdout)
    report.sort_stats("cumulative").print_stats(args.top)
    report.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
