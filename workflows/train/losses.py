"""The training losses of a batch and the validation metrics of a model.

Losses (``TrainConfig.loss_weights`` combines them), each on the coefficient error e = c - c_ref in PySCF aux order:

- ``coulomb``: eᵀ J e with J = (P|Q) of the structure's auxiliary molecule (Hartree), summed over structures and
  divided by the number of atoms in the batch;
- ``gradient``: eᵀ M e with M the occupied-virtual Coulomb-response metric of
  :mod:`workflows.train.gradient_metric` (Hartree²: the squared occupied-virtual block of the guess's
  Coulomb-matrix error; for an open shell the mean of its α and β blocks), summed over structures and divided
  the same way;
- ``screened``: the same with the screened metric Rᵀ M R (Hartree²: the squared first-order orbital gradient of the
  guess, the block above amplified by the Coulomb response);
- ``mae_rmse``: mean absolute + root-mean-square error of the raw coefficients over the batch (the seed paper's loss);
- ``spin``: e_mᵀ J e_m of the spin-density error (models with spin-density heads), divided like ``coulomb``.

The metrics themselves are :class:`workflows.train.metrics.MetricCache` objects.
"""

from __future__ import annotations

import math

import numpy as np

from workflows.train.dataset import batch_tensors


def losses(pred, target, bounds, structures, metrics, natoms, spin=None):
    """Losses of a batch (see the module docstring).

    Parameters
    ----------
    pred, target : Tensor (naux_total,)
        Predicted and reference coefficients of the batch, concatenated.
    bounds : ndarray (nstructures + 1,)
        Slices of the structures in ``pred`` (:func:`workflows.train.dataset.batch_tensors`).
    structures : list of dict
        The batch's structures.
    metrics : dict
        Quadratic-form loss name (``coulomb``, ``gradient``, ``screened``) -> its
        :class:`~workflows.train.metrics.MetricCache`; each loss is Σ_structures eᵀ M e divided by ``natoms``.
    natoms : int
        Atoms in the batch.
    spin : tuple, optional
        (predicted, reference spin-density coefficients, Coulomb MetricCache): adds the ``spin`` loss.

    Returns
    -------
    dict
        Name -> scalar tensor: one entry per metric, plus ``mae_rmse`` (and ``spin``).
    """
    import torch

    err = pred - target
    out = {name: _quadratic(err, bounds, structures, metric) / natoms for name, metric in metrics.items()}
    out["mae_rmse"] = err.abs().mean() + torch.sqrt((err * err).mean())
    if spin is not None:
        pred_spin, target_spin, coulomb = spin
        out["spin"] = _quadratic(pred_spin - target_spin, bounds, structures, coulomb) / natoms
    return out


def _quadratic(err, bounds, structures, metric):
    """Σ_structures eᵀ M e of a batch's concatenated error (a scalar tensor)."""
    import torch

    total = err.new_zeros(())
    for k, s in enumerate(structures):
        e = err[bounds[k]:bounds[k + 1]]
        total = total + e @ (torch.from_numpy(metric(s)) @ e)
    return total


def _add_per_element(per_element: dict, model, numbers, e: np.ndarray) -> None:
    """Add each atom's squared coefficient error and its function count to ``per_element[symbol]``."""
    from pyscf.data.elements import ELEMENTS

    offset = 0
    for z in numbers:
        sym = ELEMENTS[int(z)]
        n = model.nfunc[model.elements.index(sym)]
        block = e[offset:offset + n]
        per_element.setdefault(sym, [0.0, 0])
        per_element[sym][0] += float(block @ block)
        per_element[sym][1] += n
        offset += n


def evaluate(model, structures, metrics, batch_size=16) -> dict:
    """Validation metrics of a model on labelled structures.

    Parameters
    ----------
    model : DensityModel or DensityEnsemble
        Called through :meth:`workflows.train.dataset.Batch.predict`; left in training mode afterwards.
    structures : list of dict
    metrics : dict
        Name -> :class:`~workflows.train.metrics.MetricCache`.
    batch_size : int

    Returns
    -------
    dict
        ``<name>_per_atom`` for each metric (Coulomb error in Hartree, orbital-gradient metrics in Hartree²),
        ``mae`` and ``rmse`` of the coefficients, ``rmse_per_element`` (symbol -> RMSE), and for a model with
        spin-density heads ``spin_per_atom`` (the spin density's Coulomb error, Hartree).
    """
    import torch

    model.eval()
    with_spin = getattr(model, "predicts_spin", False) and "coulomb" in metrics
    total = {"abs": 0.0, "sq": 0.0, "n": 0, "atoms": 0, "spin": 0.0 if with_spin else None,
             **{name: 0.0 for name in metrics}}
    per_element: dict[str, list[float]] = {}
    with torch.no_grad():
        for start in range(0, len(structures), batch_size):
            chunk = structures[start:start + batch_size]
            tensors = batch_tensors(chunk)
            numbers, bounds = tensors.numbers, tensors.bounds
            pred, pred_spin = tensors.predict(model)
            err = (pred - tensors.target).double()
            spin_err = (pred_spin - tensors.spin_target).double().numpy() if with_spin else None
            for k, s in enumerate(chunk):
                e = err[bounds[k]:bounds[k + 1]].numpy()
                for name, metric in metrics.items():
                    matrix = metric(s).astype(np.float64)
                    total[name] += float(e @ matrix @ e)
                    if name == "coulomb" and spin_err is not None:
                        e_spin = spin_err[bounds[k]:bounds[k + 1]]
                        total["spin"] += float(e_spin @ matrix @ e_spin)
                _add_per_element(per_element, model, s["numbers"], e)
            total["abs"] += float(err.abs().sum())
            total["sq"] += float((err * err).sum())
            total["n"] += err.numel()
            total["atoms"] += len(numbers)
    model.train()
    n = max(total["n"], 1)
    spin = {} if total["spin"] is None else {"spin_per_atom": total["spin"] / max(total["atoms"], 1)}
    return {
        **{f"{name}_per_atom": total[name] / max(total["atoms"], 1) for name in metrics}, **spin,
        "mae": total["abs"] / n,
        "rmse": math.sqrt(total["sq"] / n),
        "rmse_per_element": {s: math.sqrt(v[0] / v[1]) for s, v in sorted(per_element.items())},
    }
