"""Exceptions that carry the ids a reader needs and say whether a retry can help."""

from __future__ import annotations


class CorpusforgeError(Exception):
    """Base error. `retryable` is True when running the same step again can succeed."""

    retryable = False

    def __reduce__(self):
        # Keep the message when the error crosses a process boundary.
        return (self.__class__, self.args)


class ConfigError(CorpusforgeError, ValueError):
    """An invalid parameter: the message names the value, the valid values and the fix."""


class SourceError(CorpusforgeError):
    """A structural problem in a source file that stops the run.

    Per-record problems are quarantined instead; this error is for problems that
    make the whole file unreadable or ambiguous (not UTF-8, malformed JSON line,
    empty file, missing file).
    """

    def __init__(self, path: str, message: str, line: int | None = None, fix: str = ""):
        self.path = str(path)
        self.line = line
        self.message = message
        self.fix = fix
        where = f"{self.path}, line {line}" if line is not None else self.path
        text = f"{where}: {message}"
        if fix:
            text += f". Fix: {fix}"
        super().__init__(text)

    def __reduce__(self):
        return (self.__class__, (self.path, self.message, self.line, self.fix))


class ValidationFailed(CorpusforgeError):
    """A staged release broke its data contract; the release is not published."""


class PublishError(CorpusforgeError):
    """Publishing a staged release failed; the previous release stays visible."""

    retryable = True
