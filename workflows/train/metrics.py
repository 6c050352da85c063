"""Per-structure quadratic forms of the coefficient error: the Coulomb metric and the orbital-gradient metrics.

Each metric is a (naux, naux) matrix M per structure (PySCF aux order) with eᵀ M e the cost of a coefficient
error e: J = (P|Q) of the auxiliary molecule (Hartree), or the occupied-virtual Coulomb-response metric of
:mod:`workflows.train.gradient_metric` and its screened form (Hartree²). :class:`MetricCache` computes each on first
use and keeps it within a memory budget; the orbital-gradient ones take seconds per structure and are also kept
on disk, where :func:`precompute_gradient_metrics` can fill them in beforehand with several processes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np


class MetricCache:
    """A (naux, naux) metric per structure, computed on first use and cached within a memory budget.

    Parameters
    ----------
    compute : callable
        ``compute(structure) -> ndarray (naux, naux)``.
    budget_mb : float
        Memory for cached metrics (float32); beyond it metrics are recomputed (or re-read) on every use.
    directory : path, optional
        Also keep every metric as ``<directory>/<structure_id>.npy`` (float32), read back before computing, so a
        resumed run or another process does not compute it again.
    """

    def __init__(self, compute, budget_mb: float, directory=None):
        self.compute = compute
        self.budget = budget_mb * 1e6
        self.used = 0.0
        self.cache: dict[str, np.ndarray] = {}
        self.directory = Path(directory) if directory is not None else None

    def __call__(self, s: dict) -> np.ndarray:
        """(naux, naux) float32 metric of structure ``s`` (PySCF aux order)."""
        key = s["structure_id"]
        if key in self.cache:
            return self.cache[key]
        path = self.directory / f"{key}.npy" if self.directory is not None else None
        if path is not None and path.exists():
            metric = np.load(path)
        else:
            metric = np.asarray(self.compute(s), dtype=np.float32)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
                np.save(tmp, metric)
                os.replace(tmp, path)
        if metric.shape[0] != len(s["coeffs"]):
            raise ValueError(f"structure {key}: {len(s['coeffs'])} coefficients but {metric.shape[0]} aux functions.")
        if self.used + metric.nbytes <= self.budget:
            self.cache[key] = metric
            self.used += metric.nbytes
        return metric


def coulomb_metrics(auxbasis: str, budget_mb: float) -> MetricCache:
    """Cached J = (P|Q) of each structure's auxiliary molecule (Hartree)."""

    def compute(s):
        from pyscf import gto
        from pyscf.data.elements import ELEMENTS

        from scfguess.density.auxbasis import make_auxmol

        symbols = [ELEMENTS[int(z)] for z in s["numbers"]]
        mol = gto.Mole(atom=list(zip(symbols, s["positions"].tolist())), unit="Angstrom", basis="sto-3g",
                       verbose=0)
        mol.spin = int(sum(s["numbers"])) % 2
        mol.build()
        return make_auxmol(mol, auxbasis).intor("int2c2e", hermi=1)

    return MetricCache(compute, budget_mb)


def _gradient_metric_of(s: dict, auxbasis: str, screened: bool = False) -> np.ndarray:
    from workflows.train.gradient_metric import gradient_metric

    return gradient_metric(s["numbers"], s["positions"], s["coeffs"], auxbasis, screened=screened,
                           charge=s.get("charge", 0), spin=s.get("spin", 0), spin_coeffs=s.get("spin_coeffs"))


def gradient_metrics(auxbasis: str, budget_mb: float, directory=None, screened: bool = False) -> MetricCache:
    """Cached occupied-virtual Coulomb-response metric M (``screened``: Rᵀ M R) of each structure
    (:mod:`workflows.train.gradient_metric`, Hartree²; charged ones with their charge, open shells from the
    label's α and β orbitals, ECPs where the basis expects them); seconds per structure, so ``directory`` keeps
    them on disk."""
    return MetricCache(functools.partial(_gradient_metric_of, auxbasis=auxbasis, screened=screened), budget_mb,
                       directory)


def run_metrics(cfg, auxbasis: str) -> dict[str, MetricCache]:
    """The metrics of a run: ``coulomb`` (always reported) and the orbital metrics of its losses and selection.

    Parameters
    ----------
    cfg : workflows.train.config.TrainConfig
    auxbasis : str
        The model's auxiliary basis.
    """
    metrics = {"coulomb": coulomb_metrics(auxbasis, cfg.metric_cache_mb)}
    for name in cfg.orbital_metrics():
        metrics[name] = gradient_metrics(auxbasis, cfg.metric_cache_mb, cfg.metric_dir(name),
                                         screened=name == "screened")
    return metrics


def _store_gradient_metric(s: dict, auxbasis: str, directory: str, screened: bool) -> str:
    gradient_metrics(auxbasis, 0.0, directory, screened)(s)
    return s["structure_id"]


def precompute_gradient_metrics(cfg, workers: int = 1, progress: bool = True) -> int:
    """Compute the missing on-disk metrics (gradient, screened) of a run's training and validation structures.

    Parameters
    ----------
    cfg : workflows.train.config.TrainConfig
        The run; its metrics go to ``cfg.metric_dir(name)``.
    workers : int
        Processes.
    progress : bool
        Show a tqdm bar per metric.

    Returns
    -------
    int
        How many metrics were computed.
    """
    from multiprocessing import get_context

    from tqdm import tqdm

    from scfguess.model.network import ModelConfig
    from workflows.train.dataset import training_data

    data = training_data(cfg)
    computed = 0
    for name in cfg.orbital_metrics():
        directory = cfg.metric_dir(name)
        todo = [s for s in data.val_set + data.train_set
                if not (directory / f"{s['structure_id']}.npy").exists()]
        job = functools.partial(_store_gradient_metric, auxbasis=ModelConfig.from_dict(cfg.model).auxbasis,
                                directory=str(directory), screened=name == "screened")
        with get_context("spawn").Pool(workers) as pool:
            for _ in tqdm(pool.imap_unordered(job, todo), total=len(todo), desc=f"{name} metrics",
                          disable=not progress):
                pass
        computed += len(todo)
    return computed
