"""Dataset generators: read sources, generate records and write release shards.

This package never imports Airflow, so every generator runs, and is tested and
benchmarked, without a scheduler.
"""

__version__ = "0.1.0"
