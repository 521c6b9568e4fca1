"""Assign every image to one split, so no patient or picture crosses train and a benchmark split.

Images are grouped first: images of one patient belong together, and so do
images whose perceptual hashes differ in at most PHASH_DUPLICATE_THRESHOLD bits
(the same picture resized or re-encoded, and near copies). Exact copies have
the same pHash, so they group too. Whole groups are then dealt to splits:

- a source with a `split` option (embedded_dicom defaults to `heldout`) puts
  every group it touches in that split;
- groups of series sources (nih_cxr14, phantom_series) go to `heldin` up to
  `heldin_share` of their images, the rest to `train`;
- groups of composed sources (vqa_rad, image_qa) go to `heldout` up to
  `heldout_share`, then `heldin` up to `heldin_share`, the rest to `train`.

At least one group of each kind stays in `train`. When one group touches two
sources that force different splits, the images of the later source are
quarantined as `near_duplicate_across_splits`.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict

import numpy as np

from corpusforge.generators.base import Rejected
from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD
from corpusforge.generators.med_mim.catalog import Catalog
from corpusforge.generators.seeding import derive_seed

log = logging.getLogger(__name__)

SPLITS = ("train", "heldin", "heldout")
COMPOSED_FORMATS = ("vqa_rad", "image_qa")
# Rows of the pHash matrix compared at once: 128 rows against 100,000 hashes
# take about 100 MB of uint64 scratch memory.
PHASH_BLOCK_ROWS = 128


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def near_duplicate_pairs(hashes: list[int], threshold: int) -> list[tuple[int, int]]:
    """Return index pairs (i < j) whose 64-bit hashes differ in at most `threshold` bits."""
    if len(hashes) < 2:
        return []
    values = np.array(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), PHASH_BLOCK_ROWS):
        block = values[start : start + PHASH_BLOCK_ROWS]
        distances = np.bitwise_count(block[:, None] ^ values[None, :])
        rows, columns = np.nonzero(distances <= threshold)
        for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
            if start + row < column:
                pairs.append((start + row, column))
    return pairs


def assign_splits(
    catalog: Catalog,
    formats: list[str],
    heldin_share: float,
    heldout_share: float,
    dataset: str,
    seed: int,
) -> dict[str, str]:
    """Return the split of every image key; quarantine images caught between forced splits.

    `formats[i]` is the format of source i. Rejected images are removed from the
    catalog's images, series and pools.
    """
    keys = sorted(catalog.images)
    position = {key: number for number, key in enumerate(keys)}
    groups = UnionFind(len(keys))
    by_patient: dict[str, int] = {}
    for key in keys:
        patient = catalog.images[key].patient
        if patient in by_patient:
            groups.union(by_patient[patient], position[key])
        else:
            by_patient[patient] = position[key]
    hashes = [catalog.phashes[key] for key in keys]
    for a, b in near_duplicate_pairs(hashes, PHASH_DUPLICATE_THRESHOLD):
        groups.union(a, b)

    members: dict[int, list[str]] = defaultdict(list)
    for key in keys:
        members[groups.find(position[key])].append(key)

    split_of: dict[str, str] = {}
    free: dict[str, list[list[str]]] = {"series": [], "composed": []}
    for group in members.values():
        forced = _forced_split(catalog, group)
        if forced is not None:
            for key in group:
                split_of[key] = forced
            continue
        sources = {catalog.images[key].source for key in group}
        composed = any(formats[source] in COMPOSED_FORMATS for source in sources)
        free["composed" if composed else "series"].append(group)

    shares = {
        "series": (("heldin", heldin_share),),
        "composed": (("heldout", heldout_share), ("heldin", heldin_share)),
    }
    for kind, groups_of_kind in free.items():
        rng = random.Random(derive_seed(dataset, seed, "splits", kind))
        rng.shuffle(groups_of_kind)
        _deal(groups_of_kind, shares[kind], split_of)

    _drop_unassigned(catalog, split_of)
    counts = defaultdict(int)
    for split in split_of.values():
        counts[split] += 1
    log.info("split %d images into %d groups: %s", len(keys), len(members), dict(counts))
    return split_of


def _forced_split(catalog: Catalog, group: list[str]) -> str | None:
    """Return the split a group is forced into; quarantine members of conflicting sources."""
    forced = {}
    for key in group:
        source = catalog.images[key].source
        if source in catalog.forced_splits:
            forced.setdefault(source, catalog.forced_splits[source])
    if not forced:
        return None
    first_source = min(forced)
    split = forced[first_source]
    for key in list(group):
        source = catalog.images[key].source
        if source in forced and forced[source] != split:
            catalog.rejected.append(
                Rejected(
                    reason="near_duplicate_across_splits",
                    source=catalog.images[key].source_format,
                    source_id=catalog.images[key].source_image,
                    line=None,
                    detail=(
                        f"this image or its patient matches images of source {first_source}, "
                        f"which is forced into split {split}, while its own source is forced "
                        f"into {forced[source]}"
                    ),
                    record={"image": catalog.images[key].source_image},
                )
            )
            group.remove(key)
    return split


def _deal(
    groups: list[list[str]], shares: tuple[tuple[str, float], ...], split_of: dict[str, str]
) -> None:
    """Deal groups to benchmark splits up to their shares of images; the rest go to train."""
    total = sum(len(group) for group in groups)
    remaining = list(groups)
    for split, share in shares:
        target = round(share * total)
        assigned = 0
        while len(remaining) > 1 and assigned < target:
            group = remaining.pop(0)
            assigned += len(group)
            for key in group:
                split_of[key] = split
    for group in remaining:
        for key in group:
            split_of[key] = "train"


def _drop_unassigned(catalog: Catalog, split_of: dict[str, str]) -> None:
    """Remove quarantined images from the catalog and its series and pools."""
    dropped = set(catalog.images) - set(split_of)
    if not dropped:
        return
    for key in dropped:
        del catalog.images[key]
    catalog.series = [
        (source, [key for key in keys if key not in dropped]) for source, keys in catalog.series
    ]
    catalog.series = [(source, keys) for source, keys in catalog.series if len(keys) >= 2]
    catalog.pools = {
        source: [key for key in keys if key not in dropped]
        for source, keys in catalog.pools.items()
    }
