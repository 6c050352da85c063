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


#: Configuration fields a warm start may add to a local source model (the weights reading new inputs start at
#: zero; new spin-density heads start as initialised).
GLOBAL_SWITCHES = ("global_inputs", "charge_equilibration", "spin_density")


def warm_start(model, source: str) -> None:
    """Start ``model`` from the shipped model ``source`` (a name or folder; ``NAME#K`` for member K of an ensemble):
    its weights, references and scales.

    The architectures must be the same, except that ``model`` may add to a local source (one without global
    pieces) the global pieces (:data:`GLOBAL_SWITCHES`) and elements after the source's own (``elements`` extends
    the source's list). The weights that read the new inputs start at zero and the others are rescaled for e3nn's
    fan-in normalisation, so the warm-started model predicts the source's total density exactly for the source's
    elements until training moves it; a new element's head starts at zero (its free-atom reference alone).
    """
    from scfguess.model.registry import load_model

    name, _, member = source.partition("#")
    start = load_model(name).module
    if member:
        if not hasattr(start, "members") or not member.isdigit() or int(member) >= len(start.members):
            raise ValueError(f"init_from={source!r}: NAME#K picks member K of an ensemble model.")
        start = start.members[int(member)]
    if not hasattr(start, "config"):
        raise ValueError(f"init_from={source!r} is an ensemble; name one of its members as {name}#0 … "
                         f"#{len(start.members) - 1}.")
    old, new = start.config.to_dict(), model.config.to_dict()
    differs = sorted(k for k in new if new[k] != old[k])
    grows_elements = new["elements"][:len(old["elements"])] == old["elements"]
    growable = set(GLOBAL_SWITCHES) | ({"elements"} if grows_elements else set())
    if differs and (set(differs) - growable or start.config.takes_charge_and_spin):
        raise ValueError(f"init_from={source!r}: its architecture {old} differs from this config's {new} "
                         f"in {', '.join(differs)}; only {', '.join(GLOBAL_SWITCHES)} and elements appended "
                         f"after the source's may be added, to a source without global inputs.")
    if not differs:
        model.load_state_dict(start.state_dict())
        return
    _copy_grown(start, model)


def _copy_grown(source, model) -> None:
    """Copy the local ``source`` into ``model``, whose embedding and heads may read extra scalar inputs appended
    last (added elements come after the source's, global inputs after all elements, so the source's inputs stay
    the leading block); the heads of added elements are left as they are."""
    import torch

    with torch.no_grad():
        state = model.state_dict()  # shares storage with the model
        for name, value in source.state_dict().items():
            if state[name].shape == value.shape:
                state[name].copy_(value)
        for old, new in zip([source.embedding, *source.heads], [model.embedding, *model.heads]):
            _copy_linear(old, new)


def _copy_linear(old, new) -> None:
    """Copy an e3nn ``o3.Linear`` into one with more scalar inputs: each old path into the leading block of the same
    path, times old/new path weight (the fan-in normalisation); the new inputs' weights zero."""
    new.weight.zero_()
    offsets_new = _path_offsets(new)
    for key, (start, ins) in _path_offsets(old).items():
        new_start, new_ins = offsets_new[key]
        block = old.weight[start:start + ins.path_shape[0] * ins.path_shape[1]].reshape(ins.path_shape)
        target = new.weight[new_start:new_start + new_ins.path_shape[0] * new_ins.path_shape[1]]
        target.view(new_ins.path_shape)[:ins.path_shape[0], :ins.path_shape[1]] = (
            block * (ins.path_weight / new_ins.path_weight))


def _path_offsets(linear) -> dict:
    """(i_in, i_out) -> (start in the flat weight, instruction) of an e3nn ``o3.Linear``."""
    out, start = {}, 0
    for ins in linear.instructions:
        out[(ins.i_in, ins.i_out)] = (start, ins)
        start += ins.path_shape[0] * ins.path_shape[1]
    return out
