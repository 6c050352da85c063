"""Export of a run's best epoch as a model folder: weights, metadata.json and a generated model_card.md
(see :mod:`scfguess.model.registry`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path


def export(cfg, model, best_path: Path, summary: dict, command: str) -> Path:
    """Write the best weights as the model folder ``cfg.export_to`` with metadata and a generated model card.

    Parameters
    ----------
    cfg : workflows.train.config.TrainConfig
    model : scfguess.model.DensityModel
        The run's network; the weights of ``best_path`` are loaded into it.
    best_path : Path
        ``best.pt`` of the run.
    summary : dict
        The run summary (:func:`workflows.train.loop.summarise`).
    command : str
        Command line recorded in the metadata and the card.

    Returns
    -------
    Path
        The model folder.
    """
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
            "train_charges", "train_spins", "structure_ids", "shards", "epochs", "best_epoch", "stopped", "minutes")},
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "validation": summary["best_val"], "validation_reference_only": summary["baseline_val"],
        "init_from": cfg.init_from, "validation_at_warm_start": summary["warm_start_val"],
        "training_command": command, "domain": training_domain(model.config, summary),
    }
    card = model_card(cfg, model, summary, command, meta["domain"])
    return save_model(model, cfg.export_to, meta, card)


def training_domain(config, summary: dict) -> str:
    """One line for the metadata's ``domain``: the total charges and spins (2S) of the training structures that the
    network can tell apart.

    A network that gets no total charge (``config.knows_total_charge`` False) sees every structure as neutral, and
    one without spin-density heads predicts no spin density, so they cover the neutral closed shell (the converter
    projects ions onto their electron count) whatever the data held.
    """
    charges = summary["train_charges"] if config.knows_total_charge else [0]
    spins = summary["train_spins"] if config.spin_density else [0]
    charge = "neutral" if charges == [0] else f"total charge {min(charges):+d} to {max(charges):+d}"
    spin = "closed-shell" if spins == [0] else f"2S {min(spins)} to {max(spins)} with a predicted spin density"
    return f"molecules of the listed elements: {charge}, {spin} (as the training structures)"


def model_card(cfg, model, summary: dict, command: str, domain: str) -> str:
    """Markdown model card generated from the run summary and the metadata's ``domain`` (benchmark sections are
    added after measuring)."""
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
- Domain of validity: {domain}.

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
