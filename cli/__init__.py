"""corpusforge: build, validate and publish research datasets as Parquet releases.

The root package holds the `corpusforge` command line (`corpusforge.main`) and
the reader API; the libraries are `corpusforge.generators`,
`corpusforge.schemas` and `corpusforge.data_contracts`.
"""

from typing import Any

from corpusforge.generators import __version__

__all__ = ["__version__", "load"]


def __getattr__(name: str) -> Any:
    # `load` imports pyarrow, so it is imported on first use and `corpusforge.main` stays fast.
    if name == "load":
        from corpusforge.loading import load

        return load
    raise AttributeError(f"module 'corpusforge' has no attribute {name!r}")
