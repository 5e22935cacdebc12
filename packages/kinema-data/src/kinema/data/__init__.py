"""kinema.data: metadata tables, curation stages, buckets, datasets, shards and the synthetic set.

Kept import-light: names load on first use, and submodules pull in pandas, OpenCV, torch or transformers only
when used.
"""

from kinema.core import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "COLUMNS": ".table",
    "Stage": ".stage",
    "merge_tables": ".table",
    "read_table": ".table",
    "shard_table": ".table",
    "write_table": ".table",
})

__all__ = ["COLUMNS", "Stage", "merge_tables", "read_table", "shard_table", "write_table"]
