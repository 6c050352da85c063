"""Labelled density shards: the field registry (:mod:`scfguess.data.keys`), the writer and the lazy reader."""

from scfguess.data.shards import (DensityDataset, check_attributes, read_strings, shard_attributes, shard_number,
                                  shard_paths, write_shard)

__all__ = ["DensityDataset", "check_attributes", "read_strings", "shard_attributes", "shard_number", "shard_paths",
           "write_shard"]
