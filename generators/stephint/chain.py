"""Turn a source solution into the reasoning chain that StepHint splits into steps.

The chain is the text a model would produce for the problem, normalized so that
every source reads the same way:

- Line endings are `\\n` (`\\r\\n` and lone `\\r` are converted) and surrounding
  whitespace is stripped.
- GSM8K style only: calculator annotations such as `<<16-3-4=9>>` are removed,
  so `$<<9*2=18>>18` reads `$18`. The closing `#### N` line is kept verbatim,
  because it is the GSM8K answer form and `answers.extract_final_answer` reads it.
- Any style: a reasoning trace with thinking markers becomes

      <think>
      {thinking text}
      </think>

      {solution text}

  This one form covers the Sky-T1 markers (`<|begin_of_thought|>`,
  `<|end_of_thought|>`, `<|begin_of_solution|>`, `<|end_of_solution|>`) and the
  DeepSeek-R1 markers (`<think>`, `</think>`). The thinking and solution texts are
  stripped. Text after `<|end_of_solution|>` is dropped, and a missing
  `<|end_of_solution|>` means the solution runs to the end of the trace. A
  missing opening marker means the thinking starts at the beginning of the trace
  (R1 chat templates put `<think>` in the prompt). A missing closing marker
  means the whole trace is thinking and the chain ends with `</think>`.

Text without thinking markers (MATH solutions, GSM8K answers) is kept as it is
apart from the rules above.
"""

from __future__ import annotations

import re

from corpusforge.generators.errors import ConfigError

STYLES = ("gsm8k", "math", "longcot")

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

SKY_BEGIN_THOUGHT = "<|begin_of_thought|>"
SKY_END_THOUGHT = "<|end_of_thought|>"
SKY_BEGIN_SOLUTION = "<|begin_of_solution|>"
SKY_END_SOLUTION = "<|end_of_solution|>"

# A calculator annotation never spans a line in GSM8K.
_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>\n]*>>")


def normalize_chain(style: str, source_text: str) -> str:
    """Return the reasoning chain of `source_text`, written in `style` (see module docstring)."""
    if style not in STYLES:
        raise ConfigError(f"unknown solution style {style!r}; valid styles: {', '.join(STYLES)}")

    text = source_text.replace("\r\n", "\n").replace("\r", "\n")
    if style == "gsm8k":
        text = _CALCULATOR_ANNOTATION.sub("", text)

    thinking_and_solution = _split_thinking(text)
    if thinking_and_solution is None:
        return text.strip()

    thinking, solution = thinking_and_solution
    chain = f"{THINK_OPEN}\n{thinking.strip()}\n{THINK_CLOSE}"
    solution = solution.strip()
    if solution:
        chain += f"\n\n{solution}"
    return chain


def _split_thinking(text: str) -> tuple[str, str] | None:
    """Split a trace into (thinking, solution), or return None when it has no markers."""
    if SKY_BEGIN_THOUGHT in text or SKY_END_THOUGHT in text:
        return _split_on_markers(text, SKY_BEGIN_THOUGHT, SKY_END_THOUGHT, sky_solution=True)
    if THINK_OPEN in text or THINK_CLOSE in text:
        return _split_on_markers(text, THINK_OPEN, THINK_CLOSE, sky_solution=False)
    return None


def _split_on_markers(
    text: str, open_marker: str, close_marker: str, *, sky_solution: bool
) -> tuple[str, str]:
    open_at = text.find(open_marker)
    thinking_start = 0 if open_at < 0 else open_at + len(open_marker)
    close_at = text.find(close_marker, thinking_start)
    if close_at < 0:
        return text[thinking_start:], ""

    thinking = text[thinking_start:close_at]
    solution = text[close_at + len(close_marker) :]
    if sky_solution:
        begin_at = solution.find(SKY_BEGIN_SOLUTION)
        if begin_at >= 0:
            # Text between the two markers is usually whitespace; keep anything else.
            solution = solution[:begin_at] + solution[begin_at + len(SKY_BEGIN_SOLUTION) :]
        end_at = solution.find(SKY_END_SOLUTION)
        if end_at >= 0:
            solution = solution[:end_at]
    return thinking, solution
