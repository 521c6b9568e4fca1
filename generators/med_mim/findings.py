"""Finding sets and how they change between images: the facts behind temporal answers.

A finding is a label of one image (a ChestX-ray14 class, or a phantom lesion
side). The trend between an earlier and a later image is decided by rule, so
every answer is reproducible from the labels:

- `worsening`: something increased (a new finding, more lesions, a larger
  largest lesion) and nothing decreased;
- `improving`: something decreased and nothing increased;
- `stable`: nothing changed;
- `mixed`: something increased and something else decreased.

Lesion sizes count as changed only when they differ by more than
SIZE_TOLERANCE_MM.
"""

from __future__ import annotations

from collections.abc import Sequence

from corpusforge.generators.med_mim.facts import NIH_FINDINGS, ImageFacts, finding_name

# Lesion diameters closer than this many millimetres count as the same size.
SIZE_TOLERANCE_MM = 2.0

TRENDS = ("improving", "stable", "worsening", "mixed")
TREND_OPTIONS = {
    "improving": "improving",
    "stable": "stable",
    "worsening": "worsening",
    "mixed": "mixed: some findings improved and others worsened",
}

# Phantom findings are the patient sides with at least one lesion. A sagittal
# slice does not show the side, so its only finding is `lesion`.
LEFT_LESION = "left-sided lesion"
RIGHT_LESION = "right-sided lesion"
PHANTOM_FINDINGS = (LEFT_LESION, RIGHT_LESION)
SAGITTAL_FINDINGS = ("lesion",)


def phantom_findings(lesion_sides: str, plane: str) -> tuple[str, ...]:
    """Return the finding labels of a phantom from its `lesion_sides` fact and plane."""
    if lesion_sides == "none":
        return ()
    if plane == "sagittal":
        return SAGITTAL_FINDINGS
    if lesion_sides == "both":
        return PHANTOM_FINDINGS
    return (LEFT_LESION,) if lesion_sides == "left" else (RIGHT_LESION,)


def finding_universe(image: ImageFacts) -> tuple[str, ...]:
    """Return every finding label the image's source can assign, for distractors."""
    if image.lesion_count is None:
        return NIH_FINDINGS
    return SAGITTAL_FINDINGS if image.plane == "sagittal" else PHANTOM_FINDINGS


def findings_of(image: ImageFacts) -> set[str]:
    return set(image.findings or ())


def has_findings(images: Sequence[ImageFacts]) -> bool:
    """Return whether every image carries finding labels."""
    return all(image.findings is not None for image in images)


def names(labels: Sequence[str] | set[str]) -> list[str]:
    """Return labels as sentence words, sorted."""
    return [finding_name(label) for label in sorted(labels)]


def size_change(earlier: float, later: float) -> int:
    """Return -1, 0 or 1 for a shrinking, unchanged or growing lesion size."""
    if later - earlier > SIZE_TOLERANCE_MM:
        return 1
    if earlier - later > SIZE_TOLERANCE_MM:
        return -1
    return 0


def trend(earlier: ImageFacts, later: ImageFacts) -> tuple[str, list[str]]:
    """Return the trend from `earlier` to `later` and the reasons, as phrases.

    The reasons name new and resolved findings and, for phantoms, lesion count
    and size changes, in that order.
    """
    before, after = findings_of(earlier), findings_of(later)
    increased: list[str] = []
    decreased: list[str] = []
    new, resolved = after - before, before - after
    if new:
        increased.append(f"new {' and '.join(names(new))}")
    if resolved:
        decreased.append(f"resolved {' and '.join(names(resolved))}")
    if earlier.lesion_count is not None and later.lesion_count is not None:
        if later.lesion_count > earlier.lesion_count:
            increased.append(
                f"lesions increase from {earlier.lesion_count} to {later.lesion_count}"
            )
        elif later.lesion_count < earlier.lesion_count:
            decreased.append(
                f"lesions decrease from {earlier.lesion_count} to {later.lesion_count}"
            )
        change = size_change(earlier.largest_lesion_mm or 0.0, later.largest_lesion_mm or 0.0)
        sizes = f"{earlier.largest_lesion_mm or 0:.0f} mm to {later.largest_lesion_mm or 0:.0f} mm"
        if change > 0:
            increased.append(f"the largest lesion grows from {sizes}")
        elif change < 0:
            decreased.append(f"the largest lesion shrinks from {sizes}")
    if increased and decreased:
        return "mixed", increased + decreased
    if increased:
        return "worsening", increased
    if decreased:
        return "improving", decreased
    return "stable", []


def describe_findings(labels: set[str]) -> str:
    """Return `effusion and nodule`, or `no finding` for an empty set."""
    words = names(labels)
    if not words:
        return "no finding"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]
