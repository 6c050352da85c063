"""The training loop: :func:`train` runs (or resumes) one run of a :class:`~workflows.train.config.TrainConfig`.

The run folder ``out_dir`` receives ``checkpoint.pt`` (written atomically after every epoch and on interruption; a
rerun of the same command resumes from it), ``log.csv`` (one row per epoch), ``best.pt`` (the weights of the best
epoch on the ``select_on`` validation metric) and ``summary.json``. When ``export_to`` is set, the best weights are
exported as a model folder (:mod:`workflows.train.export`).

One epoch: the training structures in a seeded order (the seed and the epoch number fix it, so a resumed run takes
the same batches), one Adam step per batch on the weighted losses of :mod:`workflows.train.losses`, then the
validation metrics, the learning-rate schedule, early stopping and the checkpoint. SIGTERM and SIGINT end the run
after the current batch; an epoch they cut short is not counted, the checkpoint of the last full epoch stays.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflows.train.config import TrainConfig
from workflows.train.dataset import TrainingData, batch_tensors, element_counts, structure_manifest, training_data
from workflows.train.export import export
from workflows.train.losses import evaluate, losses
from workflows.train.metrics import run_metrics
from workflows.train.model import build_model, warm_start


def _atomic_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class Run:
    """What a training run carries from epoch to epoch.

    Attributes
    ----------
    cfg : TrainConfig
    model : scfguess.model.DensityModel
    optimizer, scheduler : torch.optim objects
        Adam and ReduceLROnPlateau on the ``select_on`` validation metric.
    metrics : dict
        Name -> :class:`~workflows.train.metrics.MetricCache`: ``coulomb`` and the orbital metrics of the run.
    state : dict
        JSON-ready progress: ``epoch`` (epochs done), ``best`` (best ``select_on`` value), ``best_epoch``,
        ``bad_epochs`` (since the best), ``minutes`` (training time of the done epochs), ``baseline`` (validation
        metrics of the untrained model), and once known ``best_metrics`` and ``warm_start``.
    """

    cfg: TrainConfig
    model: object
    optimizer: object
    scheduler: object
    metrics: dict
    state: dict

    @property
    def folder(self) -> Path:
        return Path(self.cfg.out_dir)

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pt"

    @property
    def log_path(self) -> Path:
        return self.folder / "log.csv"

    @property
    def weights(self) -> dict[str, float]:
        """Loss name -> non-zero weight."""
        return self.cfg.active_loss_weights()

    @property
    def loss_metrics(self) -> dict:
        """The metrics that are also weighted losses."""
        return {name: m for name, m in self.metrics.items() if name in self.weights}

    @property
    def select_key(self) -> str:
        return f"{self.cfg.select_on}_per_atom"

    def finished(self) -> bool:
        """True once the epochs, the early-stopping patience or the time budget are spent."""
        cfg, state = self.cfg, self.state
        return (state["epoch"] >= cfg.max_epochs or state["bad_epochs"] >= cfg.early_stop_patience
                or state["minutes"] >= cfg.max_minutes)

    def save_checkpoint(self) -> None:
        _atomic_save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                      "scheduler": self.scheduler.state_dict(), "state": json.dumps(self.state)}, self.checkpoint_path)

    def restore_checkpoint(self) -> None:
        import torch

        ckpt = torch.load(self.checkpoint_path, weights_only=True)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = {"minutes": 0.0, **json.loads(ckpt["state"])}
        print(f"resuming {self.checkpoint_path} after epoch {self.state['epoch']}", file=sys.stderr)


def open_run(cfg: TrainConfig, train_set: list, resume: bool) -> Run:
    """A fresh run (model from :func:`~workflows.train.model.build_model`, new optimiser), or the checkpointed one
    when ``resume`` and ``out_dir/checkpoint.pt`` exists; a fresh run drops an old ``log.csv``."""
    import torch

    model = build_model(cfg, train_set)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.lr_factor,
                                                           patience=cfg.lr_patience, min_lr=cfg.min_lr)
    state = {"epoch": 0, "best": math.inf, "bad_epochs": 0, "best_epoch": -1, "baseline": None, "minutes": 0.0}
    run = Run(cfg, model, optimizer, scheduler, run_metrics(cfg, model.config.auxbasis), state)
    if resume and run.checkpoint_path.exists():
        run.restore_checkpoint()
    elif run.log_path.exists():
        run.log_path.unlink()
    return run


def record_starting_point(run: Run, val_set: list) -> None:
    """Validation metrics of the untrained model (the reference superposition alone, for delta models) into
    ``state["baseline"]``; with ``init_from``, warm-start and record those of the starting model too."""
    run.state["baseline"] = evaluate(run.model, val_set, run.metrics)
    if run.cfg.init_from:
        warm_start(run.model, run.cfg.init_from)
        run.state["warm_start"] = evaluate(run.model, val_set, run.metrics)


class StopRequest:
    """Set by SIGTERM or SIGINT while :func:`stop_requests` is active."""

    requested = False


@contextmanager
def stop_requests():
    """Turn SIGTERM and SIGINT into a :class:`StopRequest` (the previous handlers come back on exit)."""
    stop = StopRequest()

    def on_signal(signum, frame):
        stop.requested = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Clock:
    """Training minutes of the run: those of earlier invocations plus the time since this clock started."""

    def __init__(self, minutes_before: float):
        self.minutes_before = minutes_before
        self.started = time.monotonic()

    def __call__(self) -> float:
        return self.minutes_before + (time.monotonic() - self.started) / 60


def train_step(run: Run, chunk: list) -> float:
    """One Adam step on the weighted losses of the structures ``chunk``; returns the loss."""
    tensors = batch_tensors(chunk)
    pred, pred_spin = tensors.predict(run.model)
    spin = (pred_spin, tensors.spin_target, run.metrics["coulomb"]) if "spin" in run.weights else None
    parts = losses(pred, tensors.target, tensors.bounds, chunk, run.loss_metrics, len(tensors.numbers), spin)
    loss = sum(w * parts[name] for name, w in run.weights.items())
    run.optimizer.zero_grad()
    loss.backward()
    run.optimizer.step()
    return float(loss.detach())


def train_epoch(run: Run, train_set: list, stop: StopRequest, clock: Clock, progress: bool) -> float | None:
    """The batches of epoch ``state["epoch"]`` in its seeded order, until done, stopped or out of time.

    Returns
    -------
    float or None
        Mean training loss over the batches taken; None when a stop request cut the epoch short (it does not
        count). A spent time budget ends the epoch early, and it counts.
    """
    import torch
    from tqdm import tqdm

    cfg, epoch = run.cfg, run.state["epoch"]
    order = np.random.default_rng(cfg.seed + epoch).permutation(len(train_set))
    torch.manual_seed(cfg.seed * 100003 + epoch)
    running, nb = 0.0, 0
    bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}", disable=not progress, leave=False)
    for start in bar:
        running += train_step(run, [train_set[i] for i in order[start:start + cfg.batch_size]])
        nb += 1
        bar.set_postfix(loss=f"{running / nb:.4g}")
        if stop.requested or clock() > cfg.max_minutes:
            break
    if nb == 0 or (stop.requested and start + cfg.batch_size < len(order)):
        return None
    return running / nb


def end_epoch(run: Run, val_set: list, clock: Clock) -> dict:
    """Validate, step the schedule, count the epoch, keep ``best.pt`` when it improved; returns the validation
    metrics (:func:`~workflows.train.losses.evaluate`)."""
    val = evaluate(run.model, val_set, run.metrics)
    score = val[run.select_key]
    run.scheduler.step(score)
    epoch = run.state["epoch"]
    run.state.update(epoch=epoch + 1, minutes=clock())
    if score < run.state["best"]:
        run.state.update(best=score, best_epoch=epoch, bad_epochs=0, best_metrics=val)
        _atomic_save(run.model.state_dict(), run.best_path)
    else:
        run.state["bad_epochs"] += 1
    return val


def log_header(run: Run) -> list[str]:
    return (["epoch", "lr", "train_loss"] + [f"val_{name}_per_atom" for name in run.metrics]
            + ["val_mae", "val_rmse", "seconds"])


def log_row(run: Run, epoch: int, loss: float, val: dict, seconds: float) -> list:
    """The ``log.csv`` row of an epoch (learning rate after the schedule step, wall seconds)."""
    return ([epoch, run.optimizer.param_groups[0]["lr"], loss] + [val[f"{name}_per_atom"] for name in run.metrics]
            + [val["mae"], val["rmse"], round(seconds, 2)])


def run_epochs(run: Run, data: TrainingData, stop: StopRequest, progress: bool) -> None:
    """Train epoch after epoch until the run is finished or stopped, appending to ``log.csv`` and checkpointing
    after each."""
    clock = Clock(run.state["minutes"])
    new_log = not run.log_path.exists()
    with open(run.log_path, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(log_header(run))
        while not run.finished() and not stop.requested:
            epoch, started = run.state["epoch"], time.monotonic()
            loss = train_epoch(run, data.train_set, stop, clock, progress)
            if loss is None:
                break
            val = end_epoch(run, data.val_set, clock)
            writer.writerow(log_row(run, epoch, loss, val, time.monotonic() - started))
            fh.flush()
            run.save_checkpoint()
            print(f"epoch {epoch}: train {loss:.5g}  val {run.cfg.select_on}/atom {val[run.select_key]:.5g}  "
                  f"rmse {val['rmse']:.4g}  lr {run.optimizer.param_groups[0]['lr']:.2g}", file=sys.stderr)


def stop_reason(run: Run, interrupted: bool) -> str:
    """Why the run ended: ``interrupted``, ``early stopping``, ``time budget`` or ``max_epochs``."""
    if interrupted and not run.finished():
        return "interrupted"
    if run.state["bad_epochs"] >= run.cfg.early_stop_patience:
        return "early stopping"
    return "time budget" if run.state["minutes"] >= run.cfg.max_minutes else "max_epochs"


def summarise(run: Run, data: TrainingData, stopped: str) -> dict:
    """The run summary: epochs, best and baseline validation metrics, data counts and manifest, minutes."""
    state, train_set, val_set = run.state, data.train_set, data.val_set
    return {
        "epochs": state["epoch"], "best_epoch": state["best_epoch"], "best_val": state.get("best_metrics"),
        "baseline_val": state["baseline"], "warm_start_val": state.get("warm_start"), "stopped": stopped,
        "n_train": len(train_set), "n_val": len(val_set),
        "n_train_molecules": len({s["molecule_id"] for s in train_set}),
        "n_val_molecules": len({s["molecule_id"] for s in val_set}),
        "sources": sorted({s["source"] for s in data.structures}),
        "train_atoms_per_element": element_counts(train_set),
        "train_charges": sorted({s["charge"] for s in train_set}),
        "train_spins": sorted({s["spin"] for s in train_set}),
        "structure_ids": structure_manifest(train_set, val_set),
        "shards": [str(p) for p in data.shard_files], "minutes": state["minutes"],
    }


def train(cfg: TrainConfig, resume: bool = True, command: str = "", progress: bool = True) -> dict:
    """Run (or resume) training; write ``summary.json`` and, with ``export_to``, the model folder.

    Parameters
    ----------
    cfg : TrainConfig
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` when it exists.
    command : str
        Command line recorded in the exported metadata.
    progress : bool
        Show tqdm progress bars.

    Returns
    -------
    dict
        The summary of :func:`summarise`.
    """
    import torch

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    data = training_data(cfg)
    run = open_run(cfg, data.train_set, resume)
    if run.state["baseline"] is None:
        record_starting_point(run, data.val_set)
    with stop_requests() as stop:
        run_epochs(run, data, stop, progress)
    run.save_checkpoint()
    summary = summarise(run, data, stop_reason(run, stop.requested))
    with open(run.folder / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=2)
    if cfg.export_to and run.best_path.exists():
        export(cfg, run.model, run.best_path, summary, command)
    return summary
