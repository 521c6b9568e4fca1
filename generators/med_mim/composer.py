"""Compose a question for an image set: the hook where question writers plug in.

The offline `TemplateComposer` tries the ability's templates in random order
and returns the first draft that passes `verify_draft`. It needs no network and
gives a complete dataset with all four abilities.

NOTE: an LLM composer plugs in here, through the project's LLM backend in
corpusforge.generators.llm. A generator pass would write position-referencing
questions from the referenced images' QA and metadata. A separate verifier pass
would reject drafts that are not self-contained, have more or less than one
correct option, or contradict the source labels. Its drafts must pass
`verify_draft` too. It is not implemented, so `composer` accepts only `template`.
"""

from __future__ import annotations

import logging
import random
from typing import Protocol

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


COMPOSERS = {"template": TemplateComposer}


def get_composer(name: str) -> Composer:
    """Return the composer named `name`, or raise ConfigError listing the available ones."""
    if name not in COMPOSERS:
        raise ConfigError(
            f"unknown composer {name!r}; available: {', '.join(sorted(COMPOSERS))} "
            "(LLM composition is not available yet)"
        )
    return COMPOSERS[name]()
