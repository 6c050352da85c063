"""The network a run starts from: free-atom references, per-element output scales, zeroed heads or a warm start."""

from __future__ import annotations

import math

import numpy as np


def _shell_rms(mean_square: np.ndarray, shell_ls) -> np.ndarray:
    """RMS over each shell's 2l+1 functions (floored at 1e-6), repeated per function; (nfunc,)."""
    out, start = [], 0
    for l in shell_ls:
        d = 2 * l + 1
        out.extend([math.sqrt(max(mean_square[start:start + d].mean(), 1e-12))] * d)
        start += d
    return np.array(out)


def element_statistics(model, structures) -> dict:
    """Per-element reference-removed RMS of the targets, per shell (constant within each shell; PySCF order).

    Parameters
    ----------
    model : scfguess.model.DensityModel
        Its references are removed when ``model.config.delta``.
    structures : list of dict
        Training structures (``numbers``, ``coeffs``).

    Returns
    -------
    dict
        Symbol -> ndarray (nfunc,), or None for an element without atoms in ``structures``.
    """
    from pyscf.data.elements import ELEMENTS

    from scfguess.model.irreps import shell_angular_momenta

    sums = {s: 0.0 for s in model.elements}
    counts = {s: 0 for s in model.elements}
    for st in structures:
        offset = 0
        for z in st["numbers"]:
            sym = ELEMENTS[int(z)]
            n = len(model.reference(sym))
            block = st["coeffs"][offset:offset + n] - (model.reference(sym) if model.config.delta else 0.0)
            sums[sym] = sums[sym] + block.astype(np.float64) ** 2
            counts[sym] += 1
            offset += n
    return {sym: _shell_rms(sums[sym] / counts[sym], shell_angular_momenta(sym, model.config.auxbasis))
            if counts[sym] else None for sym in model.elements}


def build_model(cfg, train_set):
    """Model with references (free-atom minao fits) and output scales from the training targets.

    Parameters
    ----------
    cfg : workflows.train.config.TrainConfig
    train_set : list of dict
        Training structures (their targets set the output scales).

    Returns
    -------
    scfguess.model.DensityModel
        With zeroed output heads: it predicts the reference superposition (delta) or zero.
    """
    import torch

    from scfguess.density.reference import atomic_reference_coefficients
    from scfguess.model.network import DensityModel, ModelConfig

    model = DensityModel(ModelConfig.from_dict(cfg.model))
    if model.config.delta:
        for sym in model.elements:
            model.set_reference(sym, atomic_reference_coefficients(sym, cfg.reference_basis, model.config.auxbasis))
    for sym, scale in element_statistics(model, train_set).items():
        if scale is not None:
            model.set_scales(sym, scale)
    with torch.no_grad():
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
