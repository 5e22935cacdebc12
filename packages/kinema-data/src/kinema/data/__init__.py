"""kinema.data: metadata tables, curation stages, buckets, datasets, shards and the synthetic set.

Kept import-light: submodules pull in OpenCV, torch or transformers only when used.
"""

from .stage import Stage
from .table import COLUMNS, merge_tables, read_table, shard_table, write_table

__all__ = ["COLUMNS", "Stage", "merge_tables", "read_table", "shard_table", "write_table"]
