"""corpusforge: build, validate and publish research datasets as Parquet releases.

The root package holds the `corpusforge` command line (`corpusforge.main`) and
the reader API; the libraries are `corpusforge.generators`,
`corpusforge.schemas` and `corpusforge.data_contracts`.
"""

from corpusforge.generators import __version__

__all__ = ["__version__"]
