"""Split assignment keeps patients and near-duplicate pictures in one split."""

from __future__ import annotations

from med_mim_helpers import nih_image

from corpusforge.generators.med_mim.catalog import Catalog
from corpusforge.generators.med_mim.splits import (
    UnionFind,
    assign_splits,
    near_duplicate_pairs,
)


def _catalog(images, phashes, forced=None, formats_series=None):
    catalog = Catalog()
    for image, value in zip(images, phashes, strict=True):
        catalog.images[image.key] = image
        catalog.phashes[image.key] = value
    catalog.forced_splits = forced or {}
    catalog.series = formats_series or []
    return catalog


def _image(number: int, patient: str, source: int = 0):
    image = nih_image(number, (), patient=patient)
    return image.__class__(
        **{**image.__dict__, "key": f"{source}:{patient}/{number}", "source": source}
    )


def test_union_find_merges_transitively():
    groups = UnionFind(5)
    groups.union(0, 3)
    groups.union(3, 4)
    assert groups.find(4) == groups.find(0) == 0
    assert groups.find(1) != groups.find(0)


def test_near_duplicate_pairs_threshold():
    base = 0x0F0F_0F0F_0F0F_0F0F
    ten_bits = base ^ 0x3FF
    eleven_bits = base ^ 0x7FF
    assert near_duplicate_pairs([base, ten_bits, eleven_bits], 10) == [(0, 1), (1, 2)]
    assert near_duplicate_pairs([], 10) == []
    assert near_duplicate_pairs([base], 10) == []
    assert near_duplicate_pairs([2**64 - 1, 2**64 - 1], 0) == [(0, 1)]


def test_patients_stay_whole_and_train_is_never_empty():
    images = [_image(n, f"p{n // 2}") for n in range(40)]
    phashes = [(n * 0x9E3779B97F4A7C15) % 2**64 for n in range(40)]
    catalog = _catalog(images, phashes)
    split_of = assign_splits(catalog, ["nih_cxr14"], 0.25, 0.3, "med_mim", 1)
    by_patient = {}
    for image in images:
        by_patient.setdefault(image.patient, set()).add(split_of[image.key])
    assert all(len(splits) == 1 for splits in by_patient.values())
    counts = {split: list(split_of.values()).count(split) for split in ("train", "heldin")}
    assert counts["heldin"] == 10
    assert counts["train"] == 30
    assert "heldout" not in split_of.values()


def test_near_duplicates_of_different_patients_share_a_split():
    images = [_image(n, f"p{n}") for n in range(30)]
    phashes = [(n * 0x9E3779B97F4A7C15) % 2**64 for n in range(30)]
    phashes[7] = phashes[3] ^ 0b111
    catalog = _catalog(images, phashes)
    for seed in range(10):
        split_of = assign_splits(catalog, ["vqa_rad"], 0.2, 0.3, "med_mim", seed)
        assert split_of[images[3].key] == split_of[images[7].key]
        assert set(split_of.values()) == {"train", "heldin", "heldout"}


def test_single_group_goes_to_train():
    images = [_image(0, "p"), _image(1, "p")]
    split_of = assign_splits(_catalog(images, [1, 2**40]), ["vqa_rad"], 0.5, 0.4, "med_mim", 1)
    assert set(split_of.values()) == {"train"}


def test_forced_split_conflict_quarantines_later_source():
    first = _image(0, "a", source=0)
    copy = _image(1, "b", source=1)
    other = _image(2, "c", source=1)
    catalog = _catalog(
        [first, copy, other],
        [0xABCD, 0xABCD ^ 1, 2**64 - 1],
        forced={0: "heldout", 1: "train"},
        formats_series=[(1, [copy.key, other.key])],
    )
    catalog.pools = {1: [copy.key, other.key]}
    split_of = assign_splits(catalog, ["embedded_dicom", "nih_cxr14"], 0.1, 0.1, "med_mim", 1)
    assert split_of == {first.key: "heldout", other.key: "train"}
    assert [entry.reason for entry in catalog.rejected] == ["near_duplicate_across_splits"]
    assert copy.key not in catalog.images
    assert catalog.series == []
    assert catalog.pools == {1: [other.key]}


def test_empty_catalog():
    assert assign_splits(Catalog(), [], 0.1, 0.1, "med_mim", 1) == {}
