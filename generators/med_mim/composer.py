"""Compose a question for an image set: the hook where question writers plug in.

The offline `TemplateComposer` tries the ability's templates in random order
and returns the first draft that passes `verify_draft`. It needs no network and
gives a complete dataset with all four abilities.

The `model` composer (corpusforge.generators.llm.med_mim_composer) plans the
same template drafts, so answers, options and image positions come from the
source labels. Each shard then has the language model of the `llm` settings
reword the questions and a second request verify them. A record whose reply
changes the ground truth is quarantined.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from corpusforge.generators.base import Rejected
from corpusforge.generators.errors import ConfigError
from corpusforge.generators.med_mim import comparison, coreference, reasoning, temporal
from corpusforge.generators.med_mim.drafts import Draft, Task, verify_draft
from corpusforge.generators.med_mim.facts import ImageFacts

log = logging.getLogger(__name__)

ABILITY_TASKS: dict[str, dict[str, Task]] = {
    "temporal": temporal.TASKS,
    "reasoning": reasoning.TASKS,
    "comparison": comparison.TASKS,
    "coreference": coreference.TASKS,
}


class Composer(Protocol):
    """Writes one question of an ability about an ordered image set, or returns None."""

    name: str

    def compose(
        self, ability: str, images: list[ImageFacts], rng: random.Random, closed: bool
    ) -> Draft | None: ...


class TemplateComposer:
    """Offline question templates; the default composer."""

    name = "template"

    def compose(
        self, ability: str, images: list[ImageFacts], rng: random.Random, closed: bool
    ) -> Draft | None:
        tasks = sorted(ABILITY_TASKS[ability].items())
        rng.shuffle(tasks)
        for name, task in tasks:
            draft = task(images, rng, closed)
            if draft is None:
                continue
            problem = verify_draft(draft, len(images))
            if problem is not None:
                log.debug("template %s.%s rejected by the verifier: %s", ability, name, problem)
                continue
            return draft
        return None


def _model_composer(llm: dict[str, Any] | None, label: str) -> Composer:
    from corpusforge.generators.llm.med_mim_composer import ModelComposer
    from corpusforge.generators.llm.settings import LLMSettings

    return ModelComposer(LLMSettings.from_json(llm), label)


# Composers by name, in the order error messages list them.
COMPOSERS: dict[str, Callable[[dict[str, Any] | None, str], Composer]] = {
    "template": lambda llm, label: TemplateComposer(),
    "model": _model_composer,
}


def get_composer(
    name: str, llm: dict[str, Any] | None = None, label: str = "med_mim composer"
) -> Composer:
    """Return the composer named `name`, or raise ConfigError listing the available ones.

    `llm` holds the language-model settings of the release (plan option `llm`),
    which only the `model` composer uses.
    """
    if name not in COMPOSERS:
        raise ConfigError(f"unknown composer {name!r}; available: {', '.join(COMPOSERS)}")
    return COMPOSERS[name](llm, label)


def revise_items(
    composer: Composer, units: list[dict[str, Any]], formats: list[str]
) -> dict[str, dict[str, Any] | Rejected]:
    """Return the revised unit, or the quarantine entry, of every item unit of a shard.

    Only a composer with a `revise` method (the model composer) revises, so the
    template composer gives an empty dict. Keys are record ids, and `formats`
    names the format of each source by index.
    """
    revise = getattr(composer, "revise", None)
    if revise is None:
        return {}
    from corpusforge.generators.llm.errors import LLMFailure
    from corpusforge.generators.llm.med_mim_composer import Item

    facts: dict[str, ImageFacts] = {}
    for unit in units:
        if unit["type"] == "facts":
            facts.update(
                (key, ImageFacts.from_json(value)) for key, value in unit["images"].items()
            )
    items = [
        Item(unit, [facts[key] for key in unit["keys"]]) for unit in units if unit["type"] == "item"
    ]
    revised: dict[str, dict[str, Any] | Rejected] = {}
    for item, result in zip(items, revise(items), strict=True):
        unit = item.unit
        if isinstance(result, LLMFailure):
            record = {key: unit[key] for key in ("ability", "task", "question", "keys")}
            result = result.to_rejected(
                source=formats[unit["source"]], source_id=unit["id"], line=None, record=record
            )
        revised[unit["id"]] = result
    return revised
