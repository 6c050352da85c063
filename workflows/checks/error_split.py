"""Which part of a model's guess error does the SCF see: its Coulomb potential or its exchange-correlation potential?

    python -m workflows.checks.error_split nequip-l-v8-ens --shards data/shards/shard-00068.h5 --limit 6

For labelled structures (converged PBE/def2-SVP densities fitted in def2-universal-jfit), the converter's Fock
matrix h + J[c] + V_xc[c] is built four ways, mixing the model's coefficients and the label's:

============  ==============  ================
variant       J from          V_xc from
============  ==============  ================
``model``     model           model            (the ML guess)
``j_label``   label           model            (the guess with a perfect Coulomb potential)
``xc_label``  model           label            (the guess with a perfect exchange-correlation potential)
``label``     label           label            (the oracle: the label density through the converter)
``populations``  model with the label's atom populations  (perfect charge placement, nothing else)
``dipoles``      model with the label's atom populations and atomic dipoles
``l0_label`` …   model with the label's coefficients of the functions of one angular momentum (``--by-l``:
                 ``l0_label``, ``l1_label``, ``l2up_label`` for l ≥ 2; J and V_xc both from the mixed density)
============  ==============  ================

``populations`` moves the model's coefficients, with the smallest change in the Coulomb metric, until every atom
carries the label's auxiliary population Σ_{P∈A} q_P c_P (:func:`scfguess.density.electrons.project_atom_moments`):
how far perfect charge placement alone would take the guess; ``dipoles`` also gives every atom the label's
atomic dipole (perfect charge placement and atomic polarisation). Each is diagonalised and scored with SCFbench's orbital-gradient norm (:func:`scfbench.guesses.guess_quality`,
PBE/def2-SVP, SCFbench's default SCF settings). If ``j_label`` is far below ``model``, the Coulomb error dominates
and the Coulomb-response (gradient) loss targets the right thing; if ``xc_label`` is, the V_xc error does and a loss
blind to it cannot remove it. Two predictions of ``xc_label`` (whose only error is the Coulomb one) from the
coefficient error Δc alone are added, in the same commutator norm (2√2 times the occupied-virtual norm):
``predicted_bare`` from the gradient metric M and ``predicted_screened`` from the screened metric Rᵀ M R of
:mod:`workflows.train.gradient_metric` (``--no-predict`` skips them). Prints one JSON object: per structure the gradient
norms (Hartree) and their geometric means over the structures.

``--spin`` splits an open shell's guess error instead, between its total density and its spin density
m = ρ_α − ρ_β (both through the converter's spin-polarised V_xc, UKS):

================  ==============  ================
variant           ρ from          m from
================  ==============  ================
``model``         model           model            (the ML guess)
``spin_label``    model           label            (a perfect spin density)
``spin_none``     model           none: ρ_α = ρ_β = ρ/2
``density_label`` label           model            (a perfect total density)
``label``         label           label            (the oracle)
================  ==============  ================
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

VARIANTS = ("model", "j_label", "xc_label", "label", "populations", "dipoles")
PROJECTED = ("populations", "dipoles")
BY_L = {"l0_label": (0,), "l1_label": (1,), "l2up_label": (2, 3, 4, 5, 6)}
PREDICTIONS = ("predicted_bare", "predicted_screened")
#: --spin variants: name -> (source of ρ, source of m); "none" is ρ_α = ρ_β = ρ/2.
SPIN_MIXTURES = {"model": ("model", "model"), "spin_label": ("model", "label"), "spin_none": ("model", "none"),
                 "density_label": ("label", "model"), "label": ("label", "label")}


def _labelled_scf(structure: dict, xc: str, basis: str):
    """The SCF object (SCFbench's default settings) of a labelled structure, at its charge and spin."""
    from scfguess.scf import ScfSettings, make_scf
    from scfguess.structures import Structure, to_mole

    st = Structure(numbers=np.asarray(structure["numbers"]), positions=np.asarray(structure["positions"]),
                   id=structure["structure_id"], charge=structure.get("charge", 0), spin=structure.get("spin", 0))
    return make_scf(to_mole(st, basis), xc, ScfSettings())


def split_guess_error(model, structures: list[dict], xc: str = "pbe", basis: str = "def2-svp",
                      predict: bool = True, by_l: bool = False) -> dict:
    """Gradient norms of the four J/V_xc mixtures (see the module docstring) for each structure.

    Parameters
    ----------
    model : str or loaded model
        Installed model name, or an object with ``name``, ``auxbasis`` and ``predict(numbers, positions_Å)``.
    structures : list of dict
        Labelled structures (:func:`workflows.train.dataset.load_structures`): numbers, positions (Å), coeffs.
    predict : bool
        Also give the first-order predictions of ``xc_label`` from the bare and screened metrics.
    by_l : bool
        Also the variants of :data:`BY_L` (the label's coefficients of one angular momentum).

    Returns
    -------
    dict
        ``{"per_structure": {id: {variant: gradient norm}}, "geomean": {variant: value}, "natoms": {id: n},
        "moment_errors": {id: {"population_rms", "population_max" (e), "dipole_rms" (e·Bohr)}}}`` (model minus
        label atom moments); variants include the predictions when ``predict``.
    """
    from scfbench.guesses import guess_quality
    from scfbench.metrics import geometric_mean
    from scfguess.density.auxbasis import coulomb_metric, make_auxmol
    from scfguess.density.converter import density_fock
    from scfguess.density.electrons import atom_moments, project_atom_moments, project_electron_count
    from scfguess.density.fitting import coulomb_matrix
    from scfguess.guess import predict_coefficients
    from scfguess.model.registry import load_model
    from workflows.train.gradient_metric import channel_metric, label_channels, ov_three_center

    if isinstance(model, str):
        model = load_model(model)
    per, natoms, moment_errors = {}, {}, {}
    for s in structures:
        mf = _labelled_scf(s, xc, basis)
        mol = mf.mol
        auxmol = make_auxmol(mol, model.auxbasis)
        metric = coulomb_metric(auxmol)
        coeffs = {
            "model": project_electron_count(auxmol, predict_coefficients(mol, model).coeffs, mol.nelectron, metric),
            "label": project_electron_count(auxmol, np.asarray(s["coeffs"], dtype=np.float64), mol.nelectron, metric),
        }
        moments = {k: atom_moments(auxmol, coeffs[k], dipoles=True) for k in ("model", "label")}
        for variant, dipoles in zip(PROJECTED, (False, True)):
            target = moments["label"] if dipoles else moments["label"][:, 0]
            coeffs[variant] = project_atom_moments(auxmol, coeffs["model"], target, dipoles, metric)
        if by_l:
            l_of = np.concatenate([[auxmol.bas_angular(i)] * (2 * auxmol.bas_angular(i) + 1) * auxmol.bas_nctr(i)
                                   for i in range(auxmol.nbas)])
            for variant, ls in BY_L.items():
                coeffs[variant] = np.where(np.isin(l_of, ls), coeffs["label"], coeffs["model"])
        delta = moments["model"] - moments["label"]
        moment_errors[s["structure_id"]] = {
            "population_rms": float(np.sqrt(np.mean(delta[:, 0] ** 2))),
            "population_max": float(np.abs(delta[:, 0]).max()),
            "dipole_rms": float(np.sqrt(np.mean(np.sum(delta[:, 1:] ** 2, axis=1)))),
        }
        fock = {k: density_fock(mf, auxmol, c)[0] for k, c in coeffs.items()}
        coulomb = {k: coulomb_matrix(mol, auxmol, c) for k, c in coeffs.items() if k in ("model", "label")}
        mixtures = {
            "model": fock["model"],
            "j_label": fock["model"] - coulomb["model"] + coulomb["label"],
            "xc_label": fock["label"] - coulomb["label"] + coulomb["model"],
            "label": fock["label"],
            **{k: fock[k] for k in (*PROJECTED, *(BY_L if by_l else ()))},
        }
        s1e = mf.get_ovlp()
        row = {}
        for name in mixtures:
            mo_energy, mo_coeff = mf.eig(mixtures[name], s1e)
            dm = mf.make_rdm1(mo_coeff, mf.get_occ(mo_energy, mo_coeff))
            row[name] = guess_quality(mf, dm)[1]
        if predict:
            error = coeffs["model"] - coeffs["label"]
            channels = label_channels(mol, auxmol, coeffs["label"], xc)
            (w,) = [ov_three_center(mol, auxmol, ch.occ, ch.vir) for ch in channels]
            row["predicted_bare"] = 2 * np.sqrt(2) * float(np.linalg.norm(error @ w))
            screened = channel_metric([w], channels, metric)
            row["predicted_screened"] = 2 * np.sqrt(2) * float(np.sqrt(error @ screened @ error))
        per[s["structure_id"]] = row
        natoms[s["structure_id"]] = len(s["numbers"])
        print(s["structure_id"], len(s["numbers"]), {k: round(float(v), 4) for k, v in row.items()},
              {k: round(v, 4) for k, v in moment_errors[s["structure_id"]].items()}, file=sys.stderr, flush=True)
    return {"model": model.name, "per_structure": per, "natoms": natoms, "moment_errors": moment_errors,
            "geomean": {v: geometric_mean([row[v] for row in per.values()])
                        for v in VARIANTS + tuple(BY_L if by_l else ()) + (PREDICTIONS if predict else ())}}


def split_spin_error(model, structures: list[dict], xc: str = "pbe", basis: str = "def2-svp") -> dict:
    """Gradient norms of the total/spin-density mixtures of :data:`SPIN_MIXTURES` for open-shell structures.

    Parameters
    ----------
    model : str or loaded model
        Installed model name, or a loaded model with a spin-density output (``predict_spin``).
    structures : list of dict
        Labelled open-shell structures (:func:`workflows.train.dataset.load_structures`): numbers, positions (Å),
        charge, spin (2S > 0), coeffs and spin_coeffs.

    Returns
    -------
    dict
        ``{"per_structure": {id: {variant: gradient norm (Hartree)}}, "geomean": {variant: value}, "natoms": {id: n}}``.
    """
    from scfbench.guesses import guess_quality
    from scfbench.metrics import geometric_mean
    from scfguess.density.auxbasis import DEFAULT_AUXBASIS
    from scfguess.guess import init_guess, predict_coefficients
    from scfguess.model.registry import load_model

    if isinstance(model, str):
        model = load_model(model)
    if model.auxbasis != DEFAULT_AUXBASIS:
        raise ValueError(f"model {model.name!r} predicts in {model.auxbasis}; the labels are in {DEFAULT_AUXBASIS}.")
    if not getattr(model, "predicts_spin", False):
        raise ValueError(f"model {model.name!r} predicts no spin density.")
    per, natoms = {}, {}
    for s in structures:
        if not s.get("spin"):
            raise ValueError(f"structure {s['structure_id']} is a closed shell; --spin takes open shells only.")
        mf = _labelled_scf(s, xc, basis)
        prediction = predict_coefficients(mf.mol, model)
        rho = {"model": prediction.coeffs, "label": np.asarray(s["coeffs"], dtype=np.float64)}
        m = {"model": prediction.spin_coeffs, "label": np.asarray(s["spin_coeffs"], dtype=np.float64), "none": None}
        row = {name: guess_quality(mf, init_guess(mf, coeffs=rho[r], fix_charge=True, spin_coeffs=m[k]))[1]
               for name, (r, k) in SPIN_MIXTURES.items()}
        per[s["structure_id"]] = row
        natoms[s["structure_id"]] = len(s["numbers"])
        print(s["structure_id"], len(s["numbers"]), {k: round(float(v), 4) for k, v in row.items()},
              file=sys.stderr, flush=True)
    return {"model": model.name, "per_structure": per, "natoms": natoms,
            "geomean": {v: geometric_mean([row[v] for row in per.values()]) for v in SPIN_MIXTURES}}


def main(argv=None) -> int:
    """Command line (see the module docstring)."""
    from workflows.train.dataset import load_structures, resolve_shards

    parser = argparse.ArgumentParser(prog="python -m workflows.checks.error_split", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="installed model name")
    parser.add_argument("--shards", nargs="+", required=True, help="labelled shard files or glob patterns")
    parser.add_argument("--split", default=None, choices=("train", "val"), help="only structures of this split")
    parser.add_argument("--limit", type=int, default=6, help="first LIMIT structures (default 6)")
    parser.add_argument("--no-predict", action="store_true", help="skip the metric predictions")
    parser.add_argument("--by-l", action="store_true", help="also the label's coefficients of one l at a time")
    parser.add_argument("--spin", action="store_true",
                        help="open shells only: split the error between the total and the spin density")
    args = parser.parse_args(argv)
    structures = [s for s in load_structures(resolve_shards(args.shards))
                  if (args.split is None or s["split"] == args.split) and (not args.spin or s.get("spin"))]
    structures = structures[:args.limit]
    if not structures:
        print(f"no {'open-shell ' if args.spin else ''}structures in {args.shards}"
              + (f" of split {args.split}" if args.split else ""), file=sys.stderr)
        return 2
    if args.spin:
        result = split_spin_error(args.model, structures)
    else:
        result = split_guess_error(args.model, structures, predict=not args.no_predict, by_l=args.by_l)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
