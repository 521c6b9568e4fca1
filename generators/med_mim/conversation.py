"""The conversation of a record, in the layout of the released Med-MIM files.

A record is one user turn and one assistant turn. The user turn starts with one
`<image>` token per image, with no separator, followed by the question. Closed
questions then list their options as `A: text`, one per line. The assistant
turn is the answer: `Letter: option text` for a closed question, the reference
answer for an open one.
"""

from __future__ import annotations

from collections.abc import Sequence

from corpusforge.generators.med_mim.letters import LETTERS

IMAGE_TOKEN = "<image>"
OPTIONS_HEADER = "Options:"
CLOSED_INSTRUCTION = "Answer with the letter and the text of the correct option."


def closed_answer(letter: str, option: str) -> str:
    """Return the answer of a closed question: `B: Effusion`."""
    return f"{letter}: {option}"


def user_content(question: str, options: Sequence[str], num_images: int) -> str:
    """Return the user turn: the image tokens, the question and, if closed, its options."""
    text = IMAGE_TOKEN * num_images + question
    if options:
        lines = [f"{LETTERS[position]}: {option}" for position, option in enumerate(options)]
        text += "\n" + OPTIONS_HEADER + "\n" + "\n".join(lines) + "\n" + CLOSED_INSTRUCTION
    return text


def build_conversation(
    question: str, options: Sequence[str], answer: str, num_images: int
) -> list[dict[str, str]]:
    """Return the two turns of a record as `{"role", "content"}` dicts."""
    return [
        {"role": "user", "content": user_content(question, options, num_images)},
        {"role": "assistant", "content": answer},
    ]
