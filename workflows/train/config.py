"""The settings of one training run (:class:`TrainConfig`), read from a YAML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Loss terms a run can weigh (see :mod:`workflows.train.losses`).
LOSSES = ("coulomb", "gradient", "screened", "mae_rmse", "spin")
#: Losses whose per-structure metric is costly and kept on disk (under ``gradient_metric_dir``).
ORBITAL_METRICS = ("gradient", "screened")
#: Validation metrics that may select the best epoch.
SELECTABLE = ("coulomb",) + ORBITAL_METRICS


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes
    ----------
    shards : tuple of str
        Shard files or glob patterns (relative to the working directory).
    out_dir : str
        Run folder (checkpoints, log).
    model : dict
        Fields of :class:`scfguess.model.ModelConfig`.
    loss_weights : dict
        Weight of each loss in ``LOSSES``; zero or absent terms are skipped.
    select_on : str
        Validation metric (``coulomb``, ``gradient`` or ``screened``, per atom) that picks the best epoch and drives the
        learning-rate schedule and early stopping.
    batch_size : int
        Structures per optimisation step.
    lr : float
        Initial Adam learning rate.
    lr_factor, lr_patience : float, int
        ReduceLROnPlateau on the ``select_on`` validation metric: multiply by ``lr_factor`` after ``lr_patience`` epochs
        without improvement.
    min_lr : float
        Learning rate floor.
    early_stop_patience : int
        Stop after this many epochs without validation improvement.
    max_epochs : int
    max_minutes : float
        Training-time budget of the whole run: the minutes of its completed epochs, summed over resumed invocations.
        A run that has spent it (or stopped early) only re-exports its best epoch when started again.
    seed : int
    threads : int
        torch intra-op threads.
    max_structures : int, optional
        Use at most this many training structures outside ``keep_sources`` (a seeded sample); None: all.
    keep_sources : tuple of str
        Sources (e.g. ``"whole"``) whose training structures are all used; ``max_structures`` then caps only the
        others, so their sample does not depend on how many of these there are.
    reference_basis : str
        Orbital basis of the free-atom minao references (delta learning).
    metric_cache_mb : float
        Memory budget for cached per-structure metrics (recomputed beyond it).
    gradient_metric_dir : str, optional
        Folder of the on-disk gradient metrics (default ``out_dir/gradient-metrics``; screened ones in its
        ``screened/`` subfolder); runs on the same structures may share one.
    export_to : str, optional
        Model folder to export the best weights into.
    init_from : str, optional
        Warm start: a shipped model (name or folder; ``NAME#K`` for member K of an ensemble) with the same
        architecture (or, from a local source, that architecture plus the global-charge switches and elements
        appended to its list) whose weights, references and output scales replace the fresh initialisation;
        optimiser and schedule start fresh. Recorded in the exported metadata.
    description : str
        One line stored in the exported metadata.
    """

    shards: tuple[str, ...] = ("data/shards/shard-*.h5",)
    out_dir: str = "runs/default"
    model: dict = field(default_factory=dict)
    loss_weights: dict = field(default_factory=lambda: {"coulomb": 1.0})
    select_on: str = "coulomb"
    batch_size: int = 8
    lr: float = 5e-3
    lr_factor: float = 0.5
    lr_patience: int = 3
    min_lr: float = 1e-5
    early_stop_patience: int = 10
    max_epochs: int = 200
    max_minutes: float = 25.0
    seed: int = 0
    threads: int = 1
    max_structures: int | None = None
    keep_sources: tuple[str, ...] = ()
    reference_basis: str = "def2-svp"
    metric_cache_mb: float = 1000.0
    gradient_metric_dir: str | None = None
    export_to: str | None = None
    init_from: str | None = None
    description: str = ""

    @classmethod
    def from_yaml(cls, path) -> "TrainConfig":
        """Read a YAML file of TrainConfig fields.

        Raises
        ------
        ValueError
            An unknown field, an unknown loss in ``loss_weights`` or a ``select_on`` outside ``SELECTABLE``.
        """
        import yaml

        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown training settings {sorted(unknown)}.")
        for name in ("shards", "keep_sources"):
            if name in data:
                data[name] = tuple([data[name]] if isinstance(data[name], str) else data[name])
        for name in data.get("loss_weights", {}) or {}:
            if name not in LOSSES:
                raise ValueError(f"{path}: unknown loss {name!r}; choose from {LOSSES}.")
        if (data.get("loss_weights") or {}).get("spin") and not (data.get("model") or {}).get("spin_density"):
            raise ValueError(f"{path}: the spin loss needs a model with spin_density: true.")
        if data.get("select_on", "coulomb") not in SELECTABLE:
            raise ValueError(f"{path}: select_on must be one of {SELECTABLE}, got {data['select_on']!r}.")
        return cls(**data)

    def active_loss_weights(self) -> dict[str, float]:
        """The non-zero loss weights as floats, name -> weight."""
        return {k: float(v) for k, v in self.loss_weights.items() if float(v) != 0.0}

    def orbital_metrics(self) -> list[str]:
        """The on-disk metrics a run needs (of ``ORBITAL_METRICS``): those of its losses and of its selection."""
        return [name for name in ORBITAL_METRICS
                if float(self.loss_weights.get(name, 0.0)) != 0.0 or self.select_on == name]

    def metric_dir(self, name: str = "gradient") -> Path:
        """Folder of the on-disk ``name`` metrics (``gradient`` or ``screened``; see ``gradient_metric_dir``)."""
        root = Path(self.gradient_metric_dir or Path(self.out_dir) / "gradient-metrics")
        return root / "screened" if name == "screened" else root
