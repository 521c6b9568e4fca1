"""Score a model's predictions on an MLLMU-Med release: per split, per task, gaps and UES.

Predictions map record ids to answers. Per split of a forget config (forget,
retain, test, real) and per evaluation task:

- classification: accuracy; a prediction picks an option by its text (compared
  after normalization), else by a letter written as `B`, `(B)`, `B)`, `B.` or
  `B:`, optionally followed by that option's text. The text is matched first,
  because option texts such as "A reduction in ..." start with a letter;
- cloze: accuracy of the normalized prediction (case, spaces and a final period
  ignored) against the target;
- generation: ROUGE-L F1 over lower-cased word tokens against the target.

The target is `answer`, the value the fine-tuning data teaches: after
unlearning, a forget score near 0 means the value is no longer reproduced.
Records without a prediction score 0 and are counted as `missing`.
`answered_score` is the same mean over the records that have a prediction,
so it separates wrong answers from missing ones. For corrupted knowledge
records, `correct_rate` reports how often the prediction matches the true
answer instead.

`score_release` logs a warning for prediction ids that are not records of the
release and for splits with missing predictions. It raises ConfigError when
no prediction matches a scored record: such a file was probably written for
another release or config, and scoring it would report perfect forgetting.

Unlearning efficiency score (UES). The MLLMU-Med paper's formula was not
available when this was written, so `harmonic_v1` is this project's own and
can be replaced through `UES_FORMULAS`. With S(split) the mean of the split's
task scores:

    forgetting = 1 - mean(S(forget), S(test))
    utility    = mean(S(retain), S(real))
    UES        = 2 * forgetting * utility / (forgetting + utility)   (0 when both are 0)

The harmonic mean is high only when both parts are high: a model that forgets
everything, retain and real included, has utility near 0, and a model that was
not unlearned has forgetting near 0, so both get a UES near 0. Splits without
records are left out of their mean.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.mllmu_med.injections import normalize
from corpusforge.generators.mllmu_med.splits import FORGET_CONFIGS, LETTERS

log = logging.getLogger(__name__)

SPLITS = ("forget", "retain", "test", "real")
TASKS = ("classification", "generation", "cloze")
COLUMNS = [
    "id",
    "scenario",
    "task",
    "modality",
    "options",
    "answer",
    "answer_letter",
    "correct_answer",
    "corrupted",
]
# A letter answer: "B", "(B)", "B)", "B." or "B:". All but the bare letter may be
# followed by the option's text.
_LETTER_ANSWER = re.compile(
    r"\(([A-D])\)\s*(.*)|([A-D])[).:]\s*(.*)|([A-D])", re.IGNORECASE | re.DOTALL
)
_TOKEN = re.compile(r"\w+")


def read_predictions(path: str | Path) -> dict[str, str]:
    """Read predictions as {record id: answer}.

    Accepted layouts: a JSON object of id to answer; a JSON object of split name
    to such objects; or JSONL with `id` and `prediction` (or `answer`) per line.
    Raise ConfigError naming the file and line when it is none of these.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read predictions {path}: {error}") from error
    if path.suffix == ".jsonl":
        return _read_jsonl(path, text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path}, line {error.lineno}: invalid JSON ({error.msg}); write an object of "
            "record id to answer, or JSONL with 'id' and 'prediction'"
        ) from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of record id to answer")
    predictions: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            predictions.update({str(k): _answer_text(v) for k, v in value.items()})
        else:
            predictions[str(key)] = _answer_text(value)
    return predictions


def _read_jsonl(path: Path, text: str) -> dict[str, str]:
    predictions: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}, line {number}: invalid JSON ({error.msg})") from error
        if not isinstance(row, dict) or "id" not in row:
            raise ConfigError(f"{path}, line {number}: expected an object with 'id'")
        predictions[str(row["id"])] = _answer_text(row.get("prediction", row.get("answer")))
    return predictions


def _answer_text(value: Any) -> str:
    return "" if value is None else str(value)


def rouge_l(prediction: str, reference: str) -> float:
    """Return the ROUGE-L F1 of two texts over lower-cased word tokens."""
    candidate = _TOKEN.findall(prediction.lower())
    target = _TOKEN.findall(reference.lower())
    if not candidate or not target:
        return 0.0
    previous = [0] * (len(target) + 1)
    for token in candidate:
        current = [0]
        for position, other in enumerate(target, start=1):
            if token == other:
                current.append(previous[position - 1] + 1)
            else:
                current.append(max(previous[position], current[-1]))
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision = common / len(candidate)
    recall = common / len(target)
    return 2 * precision * recall / (precision + recall)


def picked_options(prediction: str, options: list[str]) -> set[int]:
    """Return the indices of the options a classification prediction picks.

    A prediction equal to an option's text (after `normalize`) picks that option;
    options with the same text are all picked. Otherwise a letter answer picks
    its option when the text after the letter is empty or that option's text.
    Anything else picks nothing.
    """
    text = normalize(prediction)
    if not text:
        return set()
    texts = [normalize(option) for option in options]
    by_text = {index for index, option in enumerate(texts) if option == text}
    if by_text:
        return by_text
    match = _LETTER_ANSWER.fullmatch(prediction.strip())
    if match is None:
        return set()
    letter = (match.group(1) or match.group(3) or match.group(5)).upper()
    index = LETTERS.index(letter)
    rest = match.group(2) or match.group(4) or ""
    if index >= len(options) or (rest.strip() and normalize(rest) != texts[index]):
        return set()
    return {index}


def classification_correct(prediction: str, letter: str, options: list[str]) -> bool:
    """Return whether a prediction picks option `letter`, by the option's text or by letter."""
    return LETTERS.index(letter) in picked_options(prediction, options)


def score_record(row: dict[str, Any], prediction: str) -> float:
    """Return one evaluation record's score in [0, 1] against its target answer."""
    if row["task"] == "classification":
        return float(classification_correct(prediction, row["answer_letter"], row["options"]))
    if row["task"] == "cloze":
        return float(normalize(prediction) == normalize(row["answer"]))
    return rouge_l(prediction, row["answer"])


def _matches_correct(row: dict[str, Any], prediction: str) -> bool:
    if row["task"] == "classification":
        letter = LETTERS[
            [normalize(o) for o in row["options"]].index(normalize(row["correct_answer"]))
        ]
        return classification_correct(prediction, letter, row["options"])
    return normalize(prediction) == normalize(row["correct_answer"]) or (
        row["task"] == "generation" and rouge_l(prediction, row["correct_answer"]) >= 0.99
    )


def score_split(rows: list[dict[str, Any]], predictions: dict[str, str]) -> dict[str, Any]:
    """Return the task scores, counts and breakdowns of one split's evaluation records.

    `score` counts a missing prediction as 0. `answered_score` leaves records
    without a prediction out, and is None when no record has one.
    """
    result: dict[str, Any] = {"records": 0, "missing": 0, "tasks": {}, "scenarios": {}}
    # (scenario or "all", task) -> scores of every record and of the answered records.
    sums: dict[tuple[str, str], list[float]] = {}
    answered: dict[tuple[str, str], list[float]] = {}
    corrupted_hits: list[float] = []
    for row in rows:
        if row["task"] not in TASKS:
            continue
        result["records"] += 1
        keys = [("all", row["task"]), (row["scenario"], row["task"])]
        prediction = predictions.get(row["id"])
        if prediction is None:
            result["missing"] += 1
            value = 0.0
        else:
            value = score_record(row, prediction)
            for key in keys:
                answered.setdefault(key, []).append(value)
        if row["corrupted"]:
            hit = prediction is not None and _matches_correct(row, prediction)
            corrupted_hits.append(float(hit))
        for key in keys:
            sums.setdefault(key, []).append(value)

    for (scenario, task), values in sorted(sums.items()):
        target = (
            result["tasks"] if scenario == "all" else result["scenarios"].setdefault(scenario, {})
        )
        scored = answered.get((scenario, task), [])
        target[task] = {
            "score": sum(values) / len(values),
            "answered_score": sum(scored) / len(scored) if scored else None,
            "records": len(values),
            "missing": len(values) - len(scored),
        }
    task_scores = [entry["score"] for entry in result["tasks"].values()]
    result["score"] = sum(task_scores) / len(task_scores) if task_scores else None
    result["answered_score"] = _mean(
        [entry["answered_score"] for entry in result["tasks"].values()]
    )
    result["correct_rate"] = sum(corrupted_hits) / len(corrupted_hits) if corrupted_hits else None
    return result


def _mean(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def ues_harmonic_v1(splits: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Return forgetting, utility and their harmonic mean (see the module docstring)."""
    forget = _mean([splits.get(name, {}).get("score") for name in ("forget", "test")])
    utility = _mean([splits.get(name, {}).get("score") for name in ("retain", "real")])
    if forget is None or utility is None:
        return {"forgetting": None, "utility": utility, "ues": None}
    forgetting = 1.0 - forget
    total = forgetting + utility
    ues = 2 * forgetting * utility / total if total else 0.0
    return {"forgetting": forgetting, "utility": utility, "ues": ues}


UES_FORMULAS: dict[str, Callable[[dict[str, dict[str, Any]]], dict[str, float | None]]] = {
    "harmonic_v1": ues_harmonic_v1,
}


def score_release(
    release_dir: str | Path,
    predictions: dict[str, str],
    config: str = "forget_05",
    ues: str = "harmonic_v1",
) -> dict[str, Any]:
    """Score predictions on every split of a forget config; return a JSON-ready report."""
    from corpusforge.loading import card_configs, load

    if config not in FORGET_CONFIGS:
        raise ConfigError(f"unknown config {config!r}; use one of {', '.join(FORGET_CONFIGS)}")
    if ues not in UES_FORMULAS:
        raise ConfigError(f"unknown UES formula {ues!r}; known: {', '.join(UES_FORMULAS)}")
    release_dir = Path(release_dir)
    entry = next(
        (item for item in card_configs(release_dir) if item.get("config_name") == config), None
    )
    if entry is None:
        raise ConfigError(f"{release_dir} has no config {config!r} in its dataset card")
    available = [item["split"] for item in entry.get("data_files") or []]

    report: dict[str, Any] = {"config": config, "ues_formula": ues, "splits": {}}
    known_ids: set[str] = set()
    scored_ids: set[str] = set()
    for split in SPLITS:
        if split not in available:
            continue
        rows = load(release_dir, config, split, columns=COLUMNS).to_pylist()
        known_ids.update(row["id"] for row in rows)
        scored_ids.update(row["id"] for row in rows if row["task"] in TASKS)
        report["splits"][split] = score_split(rows, predictions)
    report["unknown_ids"] = len(set(predictions) - known_ids)
    report["warnings"] = _check_coverage(release_dir, config, report, predictions, scored_ids)

    gaps: dict[str, float] = {}
    forget, retain = report["splits"].get("forget"), report["splits"].get("retain")
    if forget and retain:
        for task in TASKS:
            if task in forget["tasks"] and task in retain["tasks"]:
                gaps[task] = retain["tasks"][task]["score"] - forget["tasks"][task]["score"]
        if forget["score"] is not None and retain["score"] is not None:
            gaps["overall"] = retain["score"] - forget["score"]
    report["retain_minus_forget"] = gaps
    report.update(UES_FORMULAS[ues](report["splits"]))
    return report


def _check_coverage(
    release_dir: Path,
    config: str,
    report: dict[str, Any],
    predictions: dict[str, str],
    scored_ids: set[str],
) -> list[str]:
    """Log and return warnings about unknown ids and splits with missing predictions.

    Raise ConfigError when no prediction matches a scored record.
    """
    release = _release_key(release_dir)
    if not predictions:
        raise ConfigError("the predictions file contains no predictions")
    if not scored_ids & set(predictions):
        raise ConfigError(
            f"none of the {len(predictions)} prediction ids is an evaluation record of config "
            f"{config} in release {release!r}, so the file was probably written for another "
            "release or config; pass that one with --release or --config"
        )

    warnings = []
    if report["unknown_ids"]:
        warnings.append(
            f"{report['unknown_ids']} of {len(predictions)} prediction ids are not in the "
            f"{', '.join(report['splits'])} splits of config {config} in release {release!r}; "
            "they were ignored"
        )
    for split, result in report["splits"].items():
        if result["missing"] == 0:
            continue
        if result["missing"] == result["records"]:
            warnings.append(
                f"split {split} has no predictions: its {result['records']} records score 0"
            )
        else:
            warnings.append(
                f"split {split}: {result['missing']} of {result['records']} records have no "
                "prediction and score 0 (see answered_score for the answered records only)"
            )
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def _release_key(release_dir: Path) -> str:
    """Return the release key from manifest.json, or the folder name when it cannot be read."""
    try:
        manifest = json.loads((release_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return release_dir.name
    return str(manifest.get("release") or release_dir.name)
