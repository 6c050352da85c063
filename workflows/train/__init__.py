"""Training of density models on labelled shards, and ensembles of trained models.

- :mod:`~workflows.train.config`: the settings of a run (:class:`TrainConfig`, read from ``workflows/configs/*.yaml``);
- :mod:`~workflows.train.dataset`: the labelled structures, their molecule-level split and batches;
- :mod:`~workflows.train.metrics`: per-structure quadratic forms of the coefficient error (Coulomb, orbital gradient);
- :mod:`~workflows.train.gradient_metric`: the orbital-gradient metric itself;
- :mod:`~workflows.train.losses`: batch losses and validation metrics;
- :mod:`~workflows.train.model`: the network a run starts from;
- :mod:`~workflows.train.loop`: the training loop (:func:`train`), checkpoints and resuming;
- :mod:`~workflows.train.export`: the model folder and card of a run's best epoch;
- :mod:`~workflows.train.ensemble`: the mean of trained models as one model.

Command line: ``python -m workflows.train CONFIG.yaml [--fresh] [--no-progress] [--precompute-metrics N]``.
"""
