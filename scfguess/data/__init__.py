"""Labelled density shards: the field registry (:mod:`scfguess.data.keys`), the writer and the lazy reader."""

from scfguess.data.shards import DensityDataset, check_attributes, read_strings, shard_number, shard_paths

__all__ = ["DensityDataset", "check_attributes", "read_strings", "shard_number", "shard_paths"]
