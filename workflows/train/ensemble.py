"""Combine installed models into an ensemble model:  ``python -m workflows.train.ensemble NAME MEMBER MEMBER ...``.

The ensemble (:class:`scfguess.model.DensityEnsemble`) predicts the mean of its members' coefficients; it is saved
as an ordinary model folder ``models/NAME`` (format_version 2) and is used like any other model
(``ml:NAME`` in SCFbench, ``scfguess.apply(mf, model="NAME")``). Its metadata lists the members (name, sha256,
training command and data) and its card compares each member with the mean on the validation split of the
members' shards (the split is fixed per parent molecule, so no member trained on those molecules).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def build_ensemble(folder, members, description: str = "", command: str = "") -> dict:
    """Write the ensemble of installed models ``members`` into ``folder``; returns the validation metrics.

    Parameters
    ----------
    folder : path
        Model folder to create (its files are replaced).
    members : sequence of str
        Installed model names or folders (at least two, same elements and auxiliary basis); an ensemble among them
        contributes each of its own members, so the new model is the mean over all their networks.
    description : str
        One line stored in the metadata and the card.
    command : str
        Command line recorded in the metadata.

    Returns
    -------
    dict
        ``{"reference superposition only": ..., "<member>": ..., "ensemble": ...}``, each the metrics of
        :func:`workflows.train.losses.evaluate` on the validation structures.
    """
    from scfguess.model.network import DensityEnsemble
    from scfguess.model.registry import load_model, save_model
    from workflows.checks.evaluate import evaluate_models

    loaded = [load_model(m) for m in members]
    if len({m.sha256 for m in loaded}) < len(loaded):
        raise ValueError("ensemble members must be different models.")
    networks = [net for m in loaded for net in getattr(m.module, "members", [m.module])]
    ensemble = DensityEnsemble([net.config for net in networks])
    for target, source in zip(ensemble.members, networks):
        target.load_state_dict(source.state_dict())
    entries = [entry for m in loaded for entry in _member_entries(m)]
    shards = sorted({s for entry in entries for s in (entry.get("training") or {}).get("shards", [])})
    if not shards:
        raise ValueError("the members' metadata name no training shards to validate on.")
    metrics = evaluate_models([m.path for m in loaded], tuple(shards), "val", extra={"ensemble": ensemble})
    first = loaded[0].metadata
    meta = {
        "description": description, "target": first.get("target"), "input_units": first.get("input_units"),
        "member_models": entries,
        "validation": metrics["ensemble"], "validation_reference_only": metrics.get("reference superposition only"),
        "validation_members": {m.name: metrics[m.name] for m in loaded},
        "validation_structures": metrics["structures"], "validation_shards": shards,
        "training_command": command, "domain": first.get("domain"),
    }
    save_model(ensemble, folder, meta, _card(Path(folder).name, description, loaded, metrics, command))
    return metrics


def _member_entries(model) -> list[dict]:
    """Metadata entries of the networks a member model brings: its own, or an ensemble's list of its members."""
    if "member_models" in model.metadata:
        return model.metadata["member_models"]
    return [{"name": model.name, "sha256": model.sha256, "training_command": model.metadata.get("training_command"),
             "init_from": model.metadata.get("init_from"), "training": model.metadata.get("training")}]


def _card(name, description, loaded, metrics, command) -> str:
    rows = [("reference superposition only", metrics.get("reference superposition only"))]
    rows += [(m.name, metrics[m.name]) for m in loaded] + [(f"**{name}** (mean)", metrics["ensemble"])]
    table = "\n".join(f"| {label} | {r['coulomb_per_atom']:.3g} | {r['mae']:.4g} | {r['rmse']:.4g} |"
                      for label, r in rows if r)
    members = "\n".join(f"- `{m.name}` ({sum(p.numel() for p in m.module.parameters())} parameters, sha256 {m.sha256[:12]}…): "
                        f"`{m.metadata.get('training_command', '')}`" for m in loaded)
    return f"""# {name}

{description}

Ensemble: the mean of the coefficients predicted by its members (equivariant, same elements and auxiliary basis).

{members}

Built with: `{command}`

## Validation ({metrics['structures']} validation structures of the members' shards)

| model | Coulomb error per atom (Ha) | coefficient MAE | coefficient RMSE |
|---|---|---|---|
{table}
"""


def main(argv=None) -> int:
    """Command-line entry: ``python -m workflows.train.ensemble NAME MEMBER MEMBER ... [--description TEXT]``."""
    parser = argparse.ArgumentParser(prog="python -m workflows.train.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="folder of the new model (a bare name goes under models/)")
    parser.add_argument("members", nargs="+", help="installed model names or folders (two or more)")
    parser.add_argument("--description", default="")
    args = parser.parse_args(argv)
    if len(args.members) < 2:
        parser.error("an ensemble needs at least two members.")
    folder = Path(args.name) if ("/" in args.name) else Path("models") / args.name
    command = shlex.join(["python", "-m", "workflows.train.ensemble", *(sys.argv[1:] if argv is None else argv)])
    metrics = build_ensemble(folder, args.members, args.description, command=command)
    print(f"{folder}: validation Coulomb error per atom {metrics['ensemble']['coulomb_per_atom']:.4g} Ha", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
