"""Dataset card sections of a Med-MIM release: counts per split, ability and question type,
the letter balance of closed questions, and a bar chart drawn with Pillow.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from corpusforge.generators.med_mim.facts import ABILITIES, QUESTION_TYPES
from corpusforge.generators.med_mim.letters import LETTERS

CHART_FILE = "abilities.png"
SPLIT_ORDER = ("train", "heldin", "heldout")
# Letter balance is reported for groups of at least this many closed records.
BALANCE_MIN_GROUP = 100
CHART_PANEL = (300, 300)
CHART_COLORS = {"closed": (47, 93, 140), "open": (140, 178, 214)}


def read_counts(manifest: dict[str, Any], release_dir: Path) -> tuple[Counter, Counter]:
    """Return record counts by (split, ability, question type) and correct letters by group.

    The second counter is keyed by (split, ability, number of options, letter).
    """
    counts: Counter = Counter()
    letters: Counter = Counter()
    columns = ["ability", "question_type", "options", "correct_option"]
    for shard in manifest["shards"]:
        if shard["config"] != "qa":
            continue
        table = pq.read_table(release_dir / shard["path"], columns=columns)
        rows = zip(*(table.column(name).to_pylist() for name in columns), strict=True)
        for ability, question_type, options, letter in rows:
            counts[(shard["split"], ability, question_type)] += 1
            if letter is not None:
                letters[(shard["split"], ability, len(options), letter)] += 1
    return counts, letters


def counts_table(counts: Counter) -> str:
    lines = ["| split | ability | closed | open | total |", "|---|---|---|---|---|"]
    splits = [split for split in SPLIT_ORDER if any(key[0] == split for key in counts)]
    for split in splits:
        for ability in ABILITIES:
            closed = counts[(split, ability, "closed")]
            opened = counts[(split, ability, "open")]
            lines.append(f"| {split} | {ability} | {closed} | {opened} | {closed + opened} |")
        total = sum(value for key, value in counts.items() if key[0] == split)
        lines.append(f"| {split} | all | | | {total} |")
    return "\n".join(lines)


def balance_lines(letters: Counter) -> list[str]:
    """Return one line per (split, ability, options) group of 100 or more closed records."""
    groups: dict[tuple[str, str, int], Counter] = {}
    for (split, ability, options, letter), count in letters.items():
        groups.setdefault((split, ability, options), Counter())[letter] += count
    lines = []
    for (split, ability, options), counter in sorted(groups.items()):
        total = sum(counter.values())
        if total < BALANCE_MIN_GROUP:
            continue
        shares = [counter[letter] / total for letter in LETTERS[:options]]
        deviation = max(abs(share - 1 / options) for share in shares) * 100
        lines.append(
            f"- {split}, {ability}, {options} options: {total} records, largest deviation "
            f"from a uniform letter share {deviation:.1f} percentage points"
        )
    return lines


def draw_chart(counts: Counter, path: Path) -> None:
    """Draw one panel per split with a bar per ability, closed below open, as a PNG."""
    splits = [split for split in SPLIT_ORDER if any(key[0] == split for key in counts)] or ["train"]
    width, height = CHART_PANEL
    image = Image.new("RGB", (width * len(splits), height + 40), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for panel, split in enumerate(splits):
        left = panel * width
        totals = [
            sum(counts[(split, ability, kind)] for kind in QUESTION_TYPES) for ability in ABILITIES
        ]
        peak = max(totals) or 1
        draw.text((left + 10, 8), f"{split} ({sum(totals)} records)", fill="black", font=font)
        base = height - 20
        bar_width = (width - 40) // len(ABILITIES)
        for index, ability in enumerate(ABILITIES):
            x0 = left + 20 + index * bar_width + 6
            x1 = x0 + bar_width - 12
            top = base
            for kind in QUESTION_TYPES:
                value = counts[(split, ability, kind)]
                bar = round((height - 70) * value / peak)
                if bar:
                    draw.rectangle((x0, top - bar, x1, top), fill=CHART_COLORS[kind])
                top -= bar
            draw.text((x0, top - 14), str(totals[index]), fill="black", font=font)
            draw.text((x0, base + 4), ability[:11], fill="black", font=font)
    legend_y = height + 16
    for offset, kind in enumerate(QUESTION_TYPES):
        x = 10 + offset * 90
        draw.rectangle((x, legend_y, x + 12, legend_y + 12), fill=CHART_COLORS[kind])
        draw.text((x + 18, legend_y), kind, fill="black", font=font)
    image.save(path, format="PNG")


def card_sections(manifest: dict[str, Any], release_dir: Path) -> str:
    """Return the card's Med-MIM sections and write the bar chart beside the card."""
    counts, letters = read_counts(manifest, release_dir)
    draw_chart(counts, release_dir / CHART_FILE)
    parts = [
        "## Records by split, ability and question type\n",
        counts_table(counts) + "\n",
        f"![Records per ability and question type in each split]({CHART_FILE})\n",
        "## Correct-letter balance\n",
        "Correct letters of closed questions are dealt per split, ability and number of "
        "options, so each letter's share stays within 2 percentage points of uniform in "
        f"groups of {BALANCE_MIN_GROUP} records or more.\n",
    ]
    lines = balance_lines(letters)
    parts.append("\n".join(lines) + "\n" if lines else "No group has 100 closed records.\n")
    return "\n".join(parts)
