"""Compare installed models on one set of labelled structures (no SCF): Coulomb error per atom, MAE, RMSE.

    python -m workflows.checks.evaluate nequip-v10-ens nequip-l-v8-ens [--shards "data/shards/shard-0000?.h5"] [--split val]
    python -m workflows.checks.evaluate nequip-v10-ens nequip-l-v8-ens --guess-quality nci-21-25 --limit 8
    python -m workflows.checks.evaluate nequip-v10-ens nequip-l-v8-ens --guess-quality held-out-21-40 --limit 16

``--guess-quality SET`` scores each model's *guess* instead, on SCFbench molecules (PBE/def2-SVP, SCFbench's
default SCF settings): the orbital-gradient norm and energy of the converted guess, one Fock build per molecule and
model and no SCF — a cheap stand-in for the cycle counts of an SCFbench run, for ranking models. ``SET`` is an
SCFbench set or file, or ``held-out-LO-HI``: the validation-split training-pool molecules of LO..HI atoms
(:func:`workflows.data.worklist.held_out_structures`), the set for choosing models without touching a benchmark set;
``held-out-charged`` (``-radical``, ``-bromide``, ``-iodide``): the validation-split structures of that group of the
wider-domain work list (:func:`workflows.data.domain.held_out_domain_structures`).

Every model is scored on the same structures (by default the validation split of shards 0-9), so models trained on
different data snapshots can be compared; a model's own card reports the split it was trained with. Prints one JSON
object: model name -> metrics of :func:`workflows.train.losses.evaluate` (Coulomb error per atom in Hartree, coefficient
MAE and RMSE, RMSE per element; with ``--gradient`` also the orbital-gradient metric per atom in Hartree², with
``--screened`` the screened one), plus the reference-superposition-only baseline of the first model.
"""

from __future__ import annotations

import argparse
import json

DEFAULT_SHARDS = ("data/shards/shard-0000?.h5",)


def evaluate_models(names, shards=DEFAULT_SHARDS, split: str = "val", extra=None, gradient: bool = False,
                    gradient_dir=None, screened: bool = False) -> dict:
    """Metrics of each installed model ``names`` on the ``split`` structures of ``shards``.

    ``extra`` maps labels to further in-memory modules (e.g. an ensemble not yet saved) scored the same way.
    ``gradient`` adds the orbital-gradient metric per atom (:mod:`workflows.train.gradient_metric`; a few seconds per
    structure to set up; ``gradient_dir`` reads and keeps them as ``<gradient_dir>/<structure_id>.npy``, the layout
    of a training run's ``gradient_metric_dir``). ``screened`` adds the screened metric per atom (kept in
    ``<gradient_dir>/screened``).
    """
    import torch

    from scfguess.model.network import DensityEnsemble, DensityModel
    from scfguess.model.registry import load_model
    from workflows.train.dataset import load_structures, resolve_shards
    from workflows.train.losses import evaluate
    from workflows.train.metrics import coulomb_metrics, gradient_metrics

    structures = [s for s in load_structures(resolve_shards(shards)) if s["split"] == split]
    if not structures:
        raise ValueError(f"no {split!r} structures in {list(shards)}.")
    out = {"structures": len(structures), "shards": list(shards), "split": split}
    modules = {}
    for name in names:
        model = load_model(name)
        modules[model.name] = model.module
    modules.update(extra or {})
    metrics = None
    for i, (label, module) in enumerate(modules.items()):
        if metrics is None:
            metrics = {"coulomb": coulomb_metrics(module.auxbasis, 1000.0)}
            if gradient:
                metrics["gradient"] = gradient_metrics(module.auxbasis, 4000.0, gradient_dir)
            if screened:
                folder = None if gradient_dir is None else f"{gradient_dir}/screened"
                metrics["screened"] = gradient_metrics(module.auxbasis, 4000.0, folder, screened=True)
        out[label] = evaluate(module, structures, metrics)
        # an ensemble's references are those of its members; its first member stands for them
        base = module.members[0] if isinstance(module, DensityEnsemble) else module
        if i == 0 and isinstance(base, DensityModel) and base.config.delta:
            with torch.no_grad():  # the model with its correction switched off: references alone
                saved = [p.clone() for p in base.parameters()]
                for head in base.heads:
                    for p in head.parameters():
                        p.zero_()
                out["reference superposition only"] = evaluate(base, structures, metrics)
                for p, s in zip(base.parameters(), saved):
                    p.copy_(s)
        module.eval()
    return out


def _guess_quality_structures(molecules: str, limit: int | None) -> list:
    """SCFbench set/file structures, or ``held-out-LO-HI`` / ``held-out-GROUP`` ones."""
    import re

    from scfbench.sets import resolve_molecules
    from workflows.data.worklist import held_out_structures

    held_out = re.fullmatch(r"held-out-(\d+)-(\d+)", molecules)
    if held_out:
        return held_out_structures(int(held_out[1]), int(held_out[2]), limit)
    domain = re.fullmatch(r"held-out-(charged|radical|bromide|iodide)", molecules)
    if domain:
        from workflows.data.domain import held_out_domain_structures

        return held_out_domain_structures(domain[1], limit)
    return resolve_molecules(molecules, limit=limit)


def guess_quality_of_models(names, molecules: str = "nci-21-25", limit: int | None = 8, basis: str = "def2-svp",
                            xc: str = "pbe", grids_levels=(None,)) -> dict:
    """Orbital-gradient norm and energy of each model's converted guess on SCFbench molecules (no SCF).

    A progress bar (one step per molecule, all models) goes to stderr. With several ``grids_levels`` (the
    converter's V_xc grid; None is its default) each model is scored at each, labelled ``NAME@gridL``.

    Returns
    -------
    dict
        ``{"molecules": [ids], model name: {"gradient_norm": mean (Hartree), "gradient_norm_geomean": geometric
        mean (Hartree; SCF cycles go roughly with its logarithm), "energy_per_atom_above_best": mean over
        molecules of (E_guess - lowest E_guess of the compared models) / atoms (Hartree), "per_molecule": {id:
        [gradient norm, E_guess]}, "conversion_seconds": mean, "inference_seconds": {id: seconds}}}``. E_guess is
        the functional at the guess density matrix; inference includes the model's charge layer where it has one.
    """
    import numpy as np
    from tqdm.auto import tqdm

    from scfbench.guesses import guess_quality
    from scfbench.metrics import geometric_mean
    from scfguess.guess import ml_guess
    from scfguess.model.registry import load_model
    from scfguess.scf import ScfSettings, make_scf
    from scfguess.structures import to_mole

    variants = {(m.name if level is None else f"{m.name}@grid{level}"): (m, level)
                for m in (load_model(n) for n in names) for level in grids_levels}
    structures = _guess_quality_structures(molecules, limit)
    per = {label: {} for label in variants}
    seconds = {label: [] for label in variants}
    inference = {label: {} for label in variants}
    for st in tqdm(structures, desc="guess quality", unit="molecule", dynamic_ncols=True):
        mol = to_mole(st, basis)
        mf = make_scf(mol, xc, ScfSettings())
        for label, (m, level) in variants.items():
            guess = ml_guess(mf, m) if level is None else ml_guess(mf, m, grids_level=level)
            energy, gnorm = guess_quality(mf, guess.dm)
            per[label][st.id] = [gnorm, energy]
            seconds[label].append(guess.conversion_seconds)
            inference[label][st.id] = guess.inference_seconds
    best = {st.id: min(per[label][st.id][1] for label in variants) for st in structures}
    natoms = {st.id: len(st.numbers) for st in structures}
    out = {"molecules": [st.id for st in structures], "basis": basis, "xc": xc}
    for label in variants:
        rows = per[label]
        out[label] = {
            "gradient_norm": float(np.mean([g for g, _ in rows.values()])),
            "gradient_norm_geomean": geometric_mean([g for g, _ in rows.values()]),
            "energy_per_atom_above_best": float(np.mean([(e - best[i]) / natoms[i] for i, (_, e) in rows.items()])),
            "per_molecule": rows,
            "conversion_seconds": float(np.mean(seconds[label])),
            "inference_seconds": inference[label],
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflows.checks.evaluate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="installed model names")
    parser.add_argument("--shards", nargs="+", default=list(DEFAULT_SHARDS), help="shard files or glob patterns")
    parser.add_argument("--split", default="val", choices=("train", "val"))
    parser.add_argument("--gradient", action="store_true",
                        help="also report the orbital-gradient metric per atom (workflows.train.gradient_metric)")
    parser.add_argument("--screened", action="store_true", help="also report the screened orbital-gradient metric")
    parser.add_argument("--gradient-dir", metavar="DIR", default=None,
                        help="read and keep the gradient metrics in DIR (e.g. a training run's gradient_metric_dir)")
    parser.add_argument("--guess-quality", metavar="SET", help="score the guesses on SCFbench molecules instead")
    parser.add_argument("--limit", type=int, default=8, help="molecules of --guess-quality SET (default 8)")
    parser.add_argument("--grids-levels", default=None,
                        help="with --guess-quality: comma-separated converter grid levels to score each model at")
    args = parser.parse_args(argv)
    if args.guess_quality:
        levels = (None,) if args.grids_levels is None else tuple(int(v) for v in args.grids_levels.split(","))
        result = guess_quality_of_models(args.models, args.guess_quality, args.limit, grids_levels=levels)
    else:
        result = evaluate_models(args.models, tuple(args.shards), args.split, gradient=args.gradient or
                                 args.gradient_dir is not None, gradient_dir=args.gradient_dir,
                                 screened=args.screened)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
