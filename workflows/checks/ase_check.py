"""Which start is best for later geometries of an ASE run: SCF cycles from minao, ML, previous and oracle.

    python -m workflows.checks.ase_check [--model NAME] [--out results/ase-check-NAME.json]

Ethanol, PBE/def2-SVP with RI-J, grid level 2, conv_tol 1e-8. Two trajectories are generated with
:class:`scfguess.ase.SCFGuessCalculator`: a BFGS optimisation from a distorted geometry (6 steps) and velocity
Verlet at 300 K (0.5 fs, 5 steps, seed 0). Every geometry after the first is then converged four times, starting
from ``minao``, from the ML guess, from the converged density matrix of the previous geometry, and from the oracle
(the fitted converged density of the same geometry, what a perfect model would give). The result holds the cycles
of every step, the largest atom displacement of each step (Å) and the mean cycles per step; it decides the
``guess="auto"`` rule of the calculator (:data:`scfguess.ase.AUTO_MAX_SHIFT`).
"""

from __future__ import annotations

import sys

import numpy as np

from workflows.checks.model_result import run

SETTINGS = dict(basis="def2-svp", xc="pbe", grids_level=2, conv_tol=1e-8)


def trajectories(model) -> dict[str, list[np.ndarray]]:
    """Positions (Å) of the ethanol BFGS and MD trajectories, first geometry included."""
    from ase import units
    from ase.build import molecule
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS

    from scfguess.ase import SCFGuessCalculator

    out = {}
    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = SCFGuessCalculator(guess="previous", model=model, **SETTINGS)
    path = []
    for _ in BFGS(atoms, logfile=None).irun(fmax=1e-3, steps=6):
        path.append(atoms.positions.copy())
    out["bfgs"] = path
    atoms = molecule("CH3CH2OH")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = SCFGuessCalculator(guess="previous", model=model, **SETTINGS)
    path = [atoms.positions.copy()]
    dyn = VelocityVerlet(atoms, 0.5 * units.fs, logfile=None)
    for _ in range(5):
        dyn.run(1)
        path.append(atoms.positions.copy())
    out["md"] = path
    return out


def cycles_along(symbols, path, model) -> dict:
    """SCF cycles at every geometry after the first, from each start; the previous start uses the geometry before."""
    from pyscf import dft, gto

    from scfguess.guess import ml_guess, oracle_guess

    def scf(positions):
        mol = gto.M(atom=list(zip(symbols, positions.tolist())), basis=SETTINGS["basis"], verbose=0)
        mf = dft.RKS(mol, xc=SETTINGS["xc"]).density_fit()
        mf.grids.level = SETTINGS["grids_level"]
        mf.conv_tol = SETTINGS["conv_tol"]
        return mf

    rows, previous_dm = [], None
    for step, positions in enumerate(path):
        ref = scf(positions)
        ref.kernel()
        if step > 0:
            row = {"step": step, "max_shift_angstrom": float(np.linalg.norm(positions - path[step - 1], axis=1).max()),
                   "minao": int(ref.cycles)}
            for name, make in (("ml", lambda mf: ml_guess(mf, model).dm),
                               ("previous", lambda mf: previous_dm),
                               ("oracle", lambda mf: oracle_guess(ref, mf))):
                mf = scf(positions)
                mf.kernel(dm0=make(mf))
                if abs(mf.e_tot - ref.e_tot) > 1e-6:
                    raise RuntimeError(f"step {step}: the {name} start reached another energy "
                                       f"({mf.e_tot - ref.e_tot:.1e} Ha)")
                row[name] = int(mf.cycles)
            rows.append(row)
        previous_dm = ref.make_rdm1()
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("minao", "ml", "previous", "oracle")}
    return {"steps": rows, "mean_cycles": means}


def measure(model) -> dict:
    """Settings, and per trajectory the cycles of every step and their means."""
    from ase.build import molecule

    symbols = molecule("CH3CH2OH").get_chemical_symbols()
    result = {"settings": SETTINGS}
    for name, path in trajectories(model).items():
        result[name] = cycles_along(symbols, path, model)
        print(f"{name}: mean cycles per step {result[name]['mean_cycles']}", file=sys.stderr)
    return result


def main(argv=None) -> int:
    return run(argv, __doc__.split("\n\n")[0], "ase-check", measure)


if __name__ == "__main__":
    raise SystemExit(main())
