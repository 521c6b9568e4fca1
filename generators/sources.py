"""Parse the `sources` parameter: a list of `format:path?key=value&key=value` strings.

Examples: `gsm8k:data/gsm8k_test.jsonl?split=test`, `jsonl:/data/x.jsonl?problem_field=q`,
`synthetic_math:?count=500`. Paths are resolved when the run is planned.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from corpusforge.generators.errors import ConfigError, SourceError

_FORMAT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class SourceSpec:
    """One parsed `sources` entry, before its path is resolved."""

    text: str
    format: str
    path: str
    options: dict[str, str]


def parse_source(text: str, known_formats: tuple[str, ...]) -> SourceSpec:
    """Parse `format:path?key=value`, raising ConfigError with the valid formats."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(
            f"invalid source {text!r}: expected 'format:path', for example "
            f"'gsm8k:data/test.jsonl'; known formats: {', '.join(known_formats)}"
        )
    fmt, rest = text.split(":", 1)
    fmt = fmt.strip().lower()
    if not _FORMAT_PATTERN.match(fmt) or fmt not in known_formats:
        raise ConfigError(
            f"unknown source format {fmt!r} in {text!r}; known formats: {', '.join(known_formats)}"
        )
    path, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key in options:
            raise ConfigError(f"option {key!r} is given twice in source {text!r}")
        options[key] = value
    if "split" in options and not _NAME_PATTERN.match(options["split"]):
        raise ConfigError(
            f"invalid split {options['split']!r} in source {text!r}: split names must match "
            "[a-z0-9_]+ (the datasets library rejects hyphens)"
        )
    return SourceSpec(text=text, format=fmt, path=path.strip(), options=options)


def check_source_options(
    text: str, fmt: str, options: dict[str, str], known: tuple[str, ...]
) -> None:
    """Raise ConfigError naming any option of source `text` that format `fmt` does not take."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = ", ".join(known) if known else "no options"
        raise ConfigError(f"unknown option(s) {unknown} in source {text!r}; {fmt} takes: {takes}")


def int_source_option(
    text: str, options: dict[str, str], name: str, default: int, *, minimum: int = 1
) -> int:
    """Return the integer option `name` of source `text`, or `default` when it is absent or empty.

    Raise ConfigError naming the option, the value and the source when the value is
    not an integer or is below `minimum`.
    """
    raw = options.get(name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(
            f"invalid {name} {raw!r} in source {text!r}: use an integer of {minimum} or more"
        ) from None
    if value < minimum:
        raise ConfigError(
            f"invalid {name} {value} in source {text!r}: use an integer of {minimum} or more"
        )
    return value


def source_text(fmt: str, path: str, options: dict[str, str]) -> str:
    """Return a source string `format:path?key=value` for messages, from its parsed parts."""
    query = urlencode(options, safe="/:")
    return f"{fmt}:{path}?{query}" if query else f"{fmt}:{path}"


def sha256_of_path(path: Path) -> str:
    """Return the sha256 of a file, or of every file under a folder in sorted order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_path(spec: SourceSpec, base: Path | None = None) -> Path:
    """Return the absolute path of a source, raising SourceError when it does not exist."""
    if not spec.path:
        raise SourceError(spec.text, "the source has no path", fix="write it as 'format:path'")
    path = Path(spec.path).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    path = path.resolve()
    if not path.exists():
        raise SourceError(
            str(path),
            f"source file not found (from source {spec.text!r})",
            fix="check the path; relative paths are resolved from the working directory",
        )
    return path
