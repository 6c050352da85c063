"""Train a density model on labelled shards:  ``python -m workflows.train CONFIG.yaml [--fresh]``.

The YAML file holds the fields of :class:`TrainConfig` (``model:`` holds those of
:class:`scfguess.model.ModelConfig`). The run folder ``out_dir`` receives ``checkpoint.pt`` (written atomically
after every epoch and on interruption; a rerun of the same command resumes from it), ``log.csv`` (one row per
epoch) and ``best.pt``. When ``export_to`` is set, the best weights are exported as a model folder
(weights, metadata.json, model_card.md; see :mod:`scfguess.model.registry`).

Targets are the shards' Coulomb-fitted coefficients in PySCF aux order. Splitting is molecule-level: the stored
``split`` field of every structure, assigned per parent molecule by the labelling workflow.

Losses (``loss_weights`` combines them):
- ``coulomb``: (c - c_ref)ᵀ J (c - c_ref) with J = (P|Q) of the structure's auxiliary molecule (Hartree), summed over
  structures and divided by the number of atoms in the batch;
- ``gradient``: (c - c_ref)ᵀ M (c - c_ref) with M the occupied-virtual Coulomb-response metric of
  :mod:`workflows.gradient_metric` (Hartree²: the squared occupied-virtual block of the guess's Coulomb-matrix
  error), summed and divided the same way;
- ``screened``: the same with the screened metric Rᵀ M R of :mod:`workflows.gradient_metric` (Hartree²: the
  squared first-order orbital gradient of the guess, the block above amplified by the Coulomb response);
- ``mae_rmse``: mean absolute + root-mean-square error of the raw coefficients over the batch (the seed paper's loss).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from scfguess.data import keys as K

LOSSES = ("coulomb", "gradient", "screened", "mae_rmse")
#: Losses whose per-structure metric is costly and kept on disk (under ``gradient_metric_dir``).
ORBITAL_METRICS = ("gradient", "screened")


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
        Warm start: a shipped model (name or folder) with the same architecture whose weights, references and
        output scales replace the fresh initialisation; optimiser and schedule start fresh. Recorded in the
        exported metadata.
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
        """Read a YAML file of TrainConfig fields."""
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
        if data.get("select_on", "coulomb") not in ("coulomb",) + ORBITAL_METRICS:
            raise ValueError(f"{path}: select_on must be one of {('coulomb',) + ORBITAL_METRICS}, "
                             f"got {data['select_on']!r}.")
        return cls(**data)


# --------------------------------------------------------------------------------------- data

def resolve_shards(patterns) -> list[Path]:
    """Shard files matching the patterns, sorted, duplicates removed."""
    import glob

    paths = sorted({Path(p) for pattern in patterns for p in glob.glob(str(pattern))})
    if not paths:
        raise FileNotFoundError(f"no shard matches {list(patterns)}.")
    return paths


def load_structures(paths) -> list[dict]:
    """All structures of the shards (via :class:`scfguess.data.DensityDataset`) as small dicts, first copy of each id."""
    from scfguess.data.shards import DensityDataset

    ds = DensityDataset([str(p) for p in paths], auxbasis="def2-universal-jfit")
    out, seen = [], set()
    for i in range(len(ds)):
        item = ds[i]
        if item[K.STRUCTURE_ID_KEY] in seen:  # a structure stored twice (e.g. a snapshot and its sealed shard)
            continue
        seen.add(item[K.STRUCTURE_ID_KEY])
        out.append({
            "numbers": item[K.NUMBERS_KEY], "positions": item[K.POSITIONS_KEY],
            "coeffs": np.asarray(item[K.COEFFS_KEY], dtype=np.float32), "split": item[K.SPLIT_KEY],
            "molecule_id": item[K.MOLECULE_ID_KEY], "structure_id": item[K.STRUCTURE_ID_KEY],
            "source": item[K.SOURCE_KEY],
        })
    ds.close()
    return out


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
    from workflows.gradient_metric import gradient_metric

    return gradient_metric(s["numbers"], s["positions"], s["coeffs"], auxbasis, screened=screened)


def gradient_metrics(auxbasis: str, budget_mb: float, directory=None, screened: bool = False) -> MetricCache:
    """Cached occupied-virtual Coulomb-response metric M (``screened``: Rᵀ M R) of each structure
    (:mod:`workflows.gradient_metric`); seconds per structure, so ``directory`` keeps them on disk."""
    return MetricCache(functools.partial(_gradient_metric_of, auxbasis=auxbasis, screened=screened), budget_mb,
                       directory)


def _gradient_metric_dir(cfg: "TrainConfig", name: str = "gradient") -> Path:
    root = Path(cfg.gradient_metric_dir or Path(cfg.out_dir) / "gradient-metrics")
    return root / "screened" if name == "screened" else root


def _orbital_metrics_of(cfg: "TrainConfig") -> list[str]:
    """The on-disk metrics a run needs: those of its losses and of its selection metric."""
    return [name for name in ORBITAL_METRICS
            if float(cfg.loss_weights.get(name, 0.0)) != 0.0 or cfg.select_on == name]


def _store_gradient_metric(s: dict, auxbasis: str, directory: str, screened: bool) -> str:
    gradient_metrics(auxbasis, 0.0, directory, screened)(s)
    return s["structure_id"]


def precompute_gradient_metrics(cfg: "TrainConfig", workers: int = 1, progress: bool = True) -> int:
    """Compute the missing on-disk metrics (gradient, screened) of a run's training and validation structures into
    its metric folder (``gradient_metric_dir``, default ``out_dir/gradient-metrics``) with ``workers`` processes;
    returns how many were computed."""
    from multiprocessing import get_context

    from tqdm import tqdm

    from scfguess.model.network import ModelConfig

    train_set, val_set = split_structures(cfg, load_structures(resolve_shards(cfg.shards)))
    computed = 0
    for name in _orbital_metrics_of(cfg):
        directory = _gradient_metric_dir(cfg, name)
        todo = [s for s in val_set + train_set if not (directory / f"{s['structure_id']}.npy").exists()]
        job = functools.partial(_store_gradient_metric, auxbasis=ModelConfig.from_dict(cfg.model).auxbasis,
                                directory=str(directory), screened=name == "screened")
        with get_context("spawn").Pool(workers) as pool:
            for _ in tqdm(pool.imap_unordered(job, todo), total=len(todo), desc=f"{name} metrics",
                          disable=not progress):
                pass
        computed += len(todo)
    return computed


def element_statistics(model, structures):
    """Per-element reference-removed RMS of the targets, per shell (constant within each shell; PySCF order).

    Returns
    -------
    dict symbol -> ndarray (nfunc,)
    """
    from scfguess.model.irreps import shell_angular_momenta

    sums = {s: 0.0 for s in model.elements}
    counts = {s: 0 for s in model.elements}
    from pyscf.data.elements import ELEMENTS

    for st in structures:
        offset = 0
        for z in st["numbers"]:
            sym = ELEMENTS[int(z)]
            n = len(model.reference(sym))
            block = st["coeffs"][offset:offset + n] - (model.reference(sym) if model.config.delta else 0.0)
            sums[sym] = sums[sym] + block.astype(np.float64) ** 2
            counts[sym] += 1
            offset += n
    scales = {}
    for sym in model.elements:
        ls = shell_angular_momenta(sym, model.config.auxbasis)
        if counts[sym] == 0:
            scales[sym] = None
            continue
        ms = sums[sym] / counts[sym]
        out, start = [], 0
        for l in ls:
            d = 2 * l + 1
            out.extend([math.sqrt(max(ms[start:start + d].mean(), 1e-12))] * d)
            start += d
        scales[sym] = np.array(out)
    return scales


def element_counts(structures) -> dict:
    """Number of atoms of each element over the structures, symbol -> count."""
    from pyscf.data.elements import ELEMENTS

    numbers, counts = np.unique(np.concatenate([s["numbers"] for s in structures]), return_counts=True)
    return {ELEMENTS[int(z)]: int(c) for z, c in zip(numbers, counts)}


def structure_manifest(train_set, val_set, max_listed: int = 1000) -> dict:
    """sha256 of the sorted train/val structure ids, and the ids themselves for small data sets."""
    import hashlib

    out = {}
    for name, structures in (("train", train_set), ("val", val_set)):
        ids = sorted(s["structure_id"] for s in structures)
        out[f"{name}_sha256"] = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        if len(ids) <= max_listed:
            out[name] = ids
    return out


# --------------------------------------------------------------------------------------- losses

def batch_tensors(structures):
    """Concatenate structures into one graph: numbers, positions (float32 Å), batch, targets, per-structure slices."""
    import torch

    numbers = torch.as_tensor(np.concatenate([s["numbers"] for s in structures]), dtype=torch.long)
    positions = torch.as_tensor(np.concatenate([s["positions"] for s in structures]), dtype=torch.float32)
    batch = torch.as_tensor(np.repeat(np.arange(len(structures)), [len(s["numbers"]) for s in structures]))
    target = torch.as_tensor(np.concatenate([s["coeffs"] for s in structures]), dtype=torch.float32)
    bounds = np.concatenate([[0], np.cumsum([len(s["coeffs"]) for s in structures])])
    return numbers, positions, batch, target, bounds


def losses(pred, target, bounds, structures, metrics, natoms):
    """Losses of a batch (see the module docstring); dict name -> scalar tensor.

    ``metrics`` maps a quadratic-form loss name (``coulomb``, ``gradient``) to its :class:`MetricCache`; each is
    Σ_structures eᵀ M e divided by ``natoms``.
    """
    import torch

    err = pred - target
    out = {}
    for name, metric in metrics.items():
        total = pred.new_zeros(())
        for k, s in enumerate(structures):
            e = err[bounds[k]:bounds[k + 1]]
            total = total + e @ (torch.from_numpy(metric(s)) @ e)
        out[name] = total / natoms
    out["mae_rmse"] = err.abs().mean() + torch.sqrt((err * err).mean())
    return out


def evaluate(model, structures, metrics, batch_size=16):
    """Validation metrics: ``<name>_per_atom`` for each metric in ``metrics`` (dict name -> :class:`MetricCache`;
    Coulomb error in Hartree, gradient metric in Hartree²), MAE, RMSE, and per-element RMSE of coefficients."""
    import torch
    from pyscf.data.elements import ELEMENTS

    model.eval()
    total = {"abs": 0.0, "sq": 0.0, "n": 0, "atoms": 0, **{name: 0.0 for name in metrics}}
    per_element: dict[str, list[float]] = {}
    with torch.no_grad():
        for start in range(0, len(structures), batch_size):
            chunk = structures[start:start + batch_size]
            numbers, positions, batch, target, bounds = batch_tensors(chunk)
            pred = model(numbers, positions, batch)
            err = (pred - target).double()
            for k, s in enumerate(chunk):
                e = err[bounds[k]:bounds[k + 1]].numpy()
                for name, metric in metrics.items():
                    total[name] += float(e @ metric(s).astype(np.float64) @ e)
                offset = 0
                for z in s["numbers"]:
                    sym = ELEMENTS[int(z)]
                    n = model.nfunc[model.elements.index(sym)]
                    block = e[offset:offset + n]
                    per_element.setdefault(sym, [0.0, 0])
                    per_element[sym][0] += float(block @ block)
                    per_element[sym][1] += n
                    offset += n
            total["abs"] += float(err.abs().sum())
            total["sq"] += float((err * err).sum())
            total["n"] += err.numel()
            total["atoms"] += len(numbers)
    model.train()
    n = max(total["n"], 1)
    return {
        **{f"{name}_per_atom": total[name] / max(total["atoms"], 1) for name in metrics},
        "mae": total["abs"] / n,
        "rmse": math.sqrt(total["sq"] / n),
        "rmse_per_element": {s: math.sqrt(v[0] / v[1]) for s, v in sorted(per_element.items())},
    }


# --------------------------------------------------------------------------------------- training

def _atomic_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def build_model(cfg: TrainConfig, train):
    """Model with references (free-atom minao fits) and output scales from the training targets."""
    import torch

    from scfguess.density.reference import atomic_reference_coefficients
    from scfguess.model.network import DensityModel, ModelConfig

    model = DensityModel(ModelConfig.from_dict(cfg.model))
    if model.config.delta:
        for sym in model.elements:
            model.set_reference(sym, atomic_reference_coefficients(sym, cfg.reference_basis, model.config.auxbasis))
    for sym, scale in element_statistics(model, train).items():
        if scale is not None:
            model.set_scales(sym, scale)
    with torch.no_grad():  # start from the reference superposition (delta) or zero
        for head in model.heads:
            head.weight.zero_()
    return model


def warm_start(model, source: str) -> None:
    """Copy the weights, references and scales of the shipped model ``source`` into ``model`` (same architecture)."""
    from scfguess.model.registry import load_model

    start = load_model(source)
    if not hasattr(start.module, "config"):
        raise ValueError(f"init_from={source!r} is an ensemble; warm-start from one of its members instead.")
    if start.module.config.to_dict() != model.config.to_dict():
        raise ValueError(f"init_from={source!r}: its architecture {start.module.config.to_dict()} "
                         f"differs from this config's {model.config.to_dict()}.")
    model.load_state_dict(start.module.state_dict())


def split_structures(cfg: TrainConfig, structures):
    """Training and validation structures from the stored molecule-level split; optional seeded subsample of the
    training structures outside ``keep_sources``."""
    train = [s for s in structures if s["split"] == "train"]
    val = [s for s in structures if s["split"] == "val"]
    overlap = {s["molecule_id"] for s in train} & {s["molecule_id"] for s in val}
    if overlap:
        raise ValueError(f"molecules in both splits: {sorted(overlap)[:5]}; the split must be molecule-level.")
    kept = [s for s in train if s["source"] in cfg.keep_sources]
    others = [s for s in train if s["source"] not in cfg.keep_sources]
    if cfg.max_structures is not None and len(others) > cfg.max_structures:
        train = kept + random.Random(cfg.seed).sample(others, cfg.max_structures)
    if not train or not val:
        raise ValueError(f"need training and validation structures, have {len(train)} and {len(val)}.")
    return train, val


def train(cfg: TrainConfig, resume: bool = True, command: str = "", progress: bool = True) -> dict:
    """Run (or resume) training; returns a summary dict (best validation metrics, epochs, counts, paths).

    Parameters
    ----------
    cfg : TrainConfig
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` when it exists.
    command : str
        Command line recorded in the exported metadata.
    progress : bool
        Show tqdm progress bars.
    """
    import torch
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shard_files = resolve_shards(cfg.shards)
    structures = load_structures(shard_files)
    train_set, val_set = split_structures(cfg, structures)
    weights = {k: float(v) for k, v in cfg.loss_weights.items() if float(v) != 0.0}
    model = build_model(cfg, train_set)
    aux = model.config.auxbasis
    metrics = {"coulomb": coulomb_metrics(aux, cfg.metric_cache_mb)}  # always reported
    for name in _orbital_metrics_of(cfg):
        metrics[name] = gradient_metrics(aux, cfg.metric_cache_mb, _gradient_metric_dir(cfg, name),
                                         screened=name == "screened")
    loss_metrics = {name: m for name, m in metrics.items() if name in weights}
    select_key = f"{cfg.select_on}_per_atom"
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.lr_factor,
                                                           patience=cfg.lr_patience, min_lr=cfg.min_lr)
    state = {"epoch": 0, "best": math.inf, "bad_epochs": 0, "best_epoch": -1, "baseline": None, "minutes": 0.0}
    ckpt_path, best_path, log_path = out / "checkpoint.pt", out / "best.pt", out / "log.csv"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state = {"minutes": 0.0, **json.loads(ckpt["state"])}
        print(f"resuming {ckpt_path} after epoch {state['epoch']}", file=sys.stderr)
    elif log_path.exists():
        log_path.unlink()
    if state["baseline"] is None:
        state["baseline"] = evaluate(model, val_set, metrics)  # the reference superposition alone (delta)
        if cfg.init_from:
            warm_start(model, cfg.init_from)
            state["warm_start"] = evaluate(model, val_set, metrics)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    previous_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def save_checkpoint():
        _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "state": json.dumps(state)}, ckpt_path)

    t_start, minutes_before = time.monotonic(), state["minutes"]

    def minutes() -> float:
        return minutes_before + (time.monotonic() - t_start) / 60

    def finished() -> bool:
        return (state["epoch"] >= cfg.max_epochs or state["bad_epochs"] >= cfg.early_stop_patience
                or state["minutes"] >= cfg.max_minutes)

    new_log = not log_path.exists()
    try:
        with open(log_path, "a", newline="") as log_fh:
            writer = csv.writer(log_fh)
            if new_log:
                writer.writerow(["epoch", "lr", "train_loss"] + [f"val_{name}_per_atom" for name in metrics]
                                + ["val_mae", "val_rmse", "seconds"])
            while not finished() and not stop["flag"]:
                epoch = state["epoch"]
                order = np.random.default_rng(cfg.seed + epoch).permutation(len(train_set))
                torch.manual_seed(cfg.seed * 100003 + epoch)
                running, nb = 0.0, 0
                t_epoch = time.monotonic()
                batches = range(0, len(order), cfg.batch_size)
                bar = tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False)
                for start in bar:
                    chunk = [train_set[i] for i in order[start:start + cfg.batch_size]]
                    numbers, positions, batch, target, bounds = batch_tensors(chunk)
                    pred = model(numbers, positions, batch)
                    parts = losses(pred, target, bounds, chunk, loss_metrics, len(numbers))
                    loss = sum(w * parts[name] for name, w in weights.items())
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    running += float(loss.detach())
                    nb += 1
                    bar.set_postfix(loss=f"{running / nb:.4g}")
                    if stop["flag"] or minutes() > cfg.max_minutes:
                        break
                if nb == 0 or (stop["flag"] and start + cfg.batch_size < len(order)):
                    break  # interrupted mid-epoch: the checkpoint of the last full epoch stays
                val = evaluate(model, val_set, metrics)
                scheduler.step(val[select_key])
                state.update(epoch=epoch + 1, minutes=minutes())
                if val[select_key] < state["best"]:
                    state.update(best=val[select_key], best_epoch=epoch, bad_epochs=0, best_metrics=val)
                    _atomic_save(model.state_dict(), best_path)
                else:
                    state["bad_epochs"] += 1
                writer.writerow([epoch, optimizer.param_groups[0]["lr"], running / nb]
                                + [val[f"{name}_per_atom"] for name in metrics]
                                + [val["mae"], val["rmse"], round(time.monotonic() - t_epoch, 2)])
                log_fh.flush()
                save_checkpoint()
                print(f"epoch {epoch}: train {running / nb:.5g}  val {cfg.select_on}/atom {val[select_key]:.5g}  "
                      f"rmse {val['rmse']:.4g}  lr {optimizer.param_groups[0]['lr']:.2g}", file=sys.stderr)
    finally:
        for s, h in previous_handlers.items():
            signal.signal(s, h)
    save_checkpoint()
    stopped = ("interrupted" if stop["flag"] and not finished()
               else "early stopping" if state["bad_epochs"] >= cfg.early_stop_patience
               else "time budget" if state["minutes"] >= cfg.max_minutes else "max_epochs")
    summary = {
        "epochs": state["epoch"], "best_epoch": state["best_epoch"], "best_val": state.get("best_metrics"),
        "baseline_val": state["baseline"], "warm_start_val": state.get("warm_start"), "stopped": stopped,
        "n_train": len(train_set), "n_val": len(val_set),
        "n_train_molecules": len({s["molecule_id"] for s in train_set}),
        "n_val_molecules": len({s["molecule_id"] for s in val_set}),
        "sources": sorted({s["source"] for s in structures}),
        "train_atoms_per_element": element_counts(train_set),
        "structure_ids": structure_manifest(train_set, val_set),
        "shards": [str(p) for p in shard_files], "minutes": state["minutes"],
    }
    with open(out / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=2)
    if cfg.export_to and best_path.exists():
        export(cfg, model, best_path, summary, command)
    return summary


def export(cfg: TrainConfig, model, best_path: Path, summary: dict, command: str) -> Path:
    """Write the best weights as a model folder with metadata and a generated model card."""
    import torch

    from scfguess.model.registry import save_model

    model.load_state_dict(torch.load(best_path, weights_only=True))
    target = ("Coulomb-metric fit (def2-universal-jfit, PySCF aux order) of converged PBE/def2-SVP densities; "
              + ("the network predicts the difference to a superposition of free-atom minao densities "
                 f"({cfg.reference_basis}, Coulomb-fitted, spherical part)." if model.config.delta
                 else "raw coefficients."))
    meta = {
        "description": cfg.description, "target": target, "input_units": {"positions": "angstrom"},
        "loss_weights": cfg.loss_weights, "training": {k: summary[k] for k in (
            "n_train", "n_val", "n_train_molecules", "n_val_molecules", "sources", "train_atoms_per_element",
            "structure_ids", "shards", "epochs",
            "best_epoch", "stopped", "minutes")},
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "validation": summary["best_val"], "validation_reference_only": summary["baseline_val"],
        "init_from": cfg.init_from, "validation_at_warm_start": summary["warm_start_val"],
        "training_command": command, "domain": "neutral, closed-shell molecules of the listed elements",
    }
    card = model_card(cfg, model, summary, command)
    return save_model(model, cfg.export_to, meta, card)


def model_card(cfg: TrainConfig, model, summary: dict, command: str) -> str:
    """Markdown model card generated from the run summary (benchmark sections are added after measuring)."""
    from scfguess.model.network import count_parameters

    best, base = summary["best_val"] or {}, summary["baseline_val"] or {}
    rows = "\n".join(
        f"| {s} | {base.get('rmse_per_element', {}).get(s, float('nan')):.4g} | {v:.4g} |"
        for s, v in best.get("rmse_per_element", {}).items())
    gradient_row = ""
    for name, label in (("gradient", "orbital-gradient metric"), ("screened", "screened orbital-gradient metric")):
        if f"{name}_per_atom" in best:
            selected = ", the selection metric" if cfg.select_on == name else ""
            gradient_row += (f"| {label} per atom (Hartree²{selected}) | "
                             f"{base.get(f'{name}_per_atom', float('nan')):.4g} | {best[f'{name}_per_atom']:.4g} |\n")
    return f"""# {Path(cfg.export_to).name}

{cfg.description}

- Architecture: NequIP-like e3nn network, {count_parameters(model)} parameters, config `{model.config.to_dict()}`.
- Output: def2-universal-jfit coefficients, PySCF aux order, elements {', '.join(model.elements)}.
- Target: {'difference to free-atom minao reference densities' if model.config.delta else 'raw coefficients'}.
- Loss weights: {cfg.loss_weights}.
- Domain of validity: neutral, closed-shell molecules (the training data has no ions or radicals).

## Training data
{summary['n_train']} training structures ({summary['n_train_molecules']} molecules), {summary['n_val']} validation
structures ({summary['n_val_molecules']} molecules), sources {summary['sources']}, PBE/def2-SVP labels, from
{len(summary['shards'])} shard(s). {summary['epochs']} epochs in {summary['minutes']:.1f} min on CPU
(stopped: {summary['stopped']}; best epoch {summary['best_epoch']}).
Training atoms per element: {summary['train_atoms_per_element']}; an element with no training atoms is predicted as
its free-atom reference density alone.

Reproduce: `{command}`{f" (warm start from `{cfg.init_from}`, which must be present)" if cfg.init_from else ""}

## Validation (molecule-level split)
| metric | reference superposition only | model |
|---|---|---|
| Coulomb error per atom (Hartree) | {base.get('coulomb_per_atom', float('nan')):.4g} | {best.get('coulomb_per_atom', float('nan')):.4g} |
| coefficient MAE | {base.get('mae', float('nan')):.4g} | {best.get('mae', float('nan')):.4g} |
| coefficient RMSE | {base.get('rmse', float('nan')):.4g} | {best.get('rmse', float('nan')):.4g} |
{gradient_row}
Per-element coefficient RMSE (reference only | model):

| element | reference only | model |
|---|---|---|
{rows}
"""


def main(argv=None) -> int:
    """Command-line entry: ``python -m workflows.train CONFIG.yaml [--fresh]``."""
    parser = argparse.ArgumentParser(prog="python -m workflows.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML file of TrainConfig fields")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser.add_argument("--precompute-metrics", type=int, metavar="N",
                        help="only compute the missing gradient metrics (gradient_metric_dir), N processes")
    args = parser.parse_args(argv)
    cfg = TrainConfig.from_yaml(args.config)
    if args.precompute_metrics:
        done = precompute_gradient_metrics(cfg, args.precompute_metrics, progress=not args.no_progress)
        print(json.dumps({"computed": done, "directory": str(_gradient_metric_dir(cfg))}))
        return 0
    command = "python -m workflows.train " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = train(cfg, resume=not args.fresh, command=command, progress=not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("epochs", "best_epoch", "stopped", "n_train", "n_val")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
