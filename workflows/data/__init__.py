"""Data workflows: work lists of training structures, labelling them into shards, reports on the shards."""
