"""The `corpusforge` command line: build, list, show, verify and export releases."""

from corpusforge.cli.main import main

__all__ = ["main"]
