"""Which start is best along an ASE trajectory: wall seconds and SCF cycles per step for every ``guess`` mode.

    python -m workflows.checks.ase_guess [--model NAME] [--out benchmarks/ase-guess/ase-guess.json]

For each molecule (ethanol, acetamide, benzene; PBE/def2-SVP with RI-J and the calculator's default settings) two
trajectories are made once with :class:`scfguess.ase.SCFGuessCalculator`: velocity Verlet at 300 K (0.5 fs,
``--md-steps`` steps, seed 0) and a BFGS optimisation from a distorted geometry (``fmax`` 0.05 eV/Å, at most
``--bfgs-steps`` steps). Each trajectory is then replayed, geometry by geometry, through a fresh calculator per
``guess`` mode, asking for energy and forces as MD and BFGS do; the time of each step is the calculator's whole
``calculate`` (guess, conversion, SCF and gradient), so a guess that saves cycles but costs conversion time shows
it. The modes take turns at every geometry (each calculator keeps its own history), so a change in the machine's
load falls on all of them alike. Every step's energy must agree with the ``minao`` replay's to 1e-6 Ha. The
result decides ``guess="auto"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

MOLECULES = ("CH3CH2OH", "CH3CONH2", "C6H6")
MODES = ("minao", "ml", "previous", "extrapolate", "previous+ml")
SETTINGS = dict(basis="def2-svp", xc="pbe")


def trajectories(name: str, model, md_steps: int, bfgs_steps: int) -> dict[str, list[np.ndarray]]:
    """Positions (Å) along the MD run and the BFGS run of one molecule, first geometry included."""
    from ase import units
    from ase.build import molecule
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS

    from scfguess.ase import SCFGuessCalculator

    atoms = molecule(name)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = SCFGuessCalculator(guess="previous", model=model, **SETTINGS)
    md = [atoms.positions.copy()]
    dyn = VelocityVerlet(atoms, 0.5 * units.fs, logfile=None)
    for _ in range(md_steps):
        dyn.run(1)
        md.append(atoms.positions.copy())
    atoms = molecule(name)
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = SCFGuessCalculator(guess="previous", model=model, **SETTINGS)
    bfgs = []
    for _ in BFGS(atoms, logfile=None).irun(fmax=0.05, steps=bfgs_steps):
        bfgs.append(atoms.positions.copy())
    return {"md": md, "bfgs": bfgs}


def replay(name: str, path: list[np.ndarray], model) -> dict[str, list[dict]]:
    """Energy, forces and timing at every geometry of ``path``, one calculator per ``guess`` mode, in turns."""
    from ase.build import molecule

    from scfguess.ase import SCFGuessCalculator

    runs = {mode: [] for mode in MODES}
    systems = {}
    for mode in MODES:
        systems[mode] = molecule(name)
        systems[mode].calc = SCFGuessCalculator(guess=mode, model=model, **SETTINGS)
    for positions in path:
        for mode, atoms in systems.items():
            atoms.positions = positions
            t0 = time.perf_counter()
            atoms.get_forces()
            seconds = time.perf_counter() - t0
            r = atoms.calc.results
            runs[mode].append({"seconds": seconds, "cycles": int(r["scf_cycles"]), "guess": r["scf_guess"],
                               "energy_ev": float(r["energy"])})
    return runs


def measure(model, md_steps: int = 20, bfgs_steps: int = 15) -> dict:
    """Per molecule and trajectory: per-mode step rows and means over the steps after the first."""
    from pyscf.data import nist

    result = {"settings": SETTINGS, "modes": MODES, "md_steps": md_steps, "runs": {}}
    for name in MOLECULES:
        for kind, path in trajectories(name, model, md_steps, bfgs_steps).items():
            runs = replay(name, path, model)
            for mode, rows in runs.items():
                for step, (row, ref) in enumerate(zip(rows, runs["minao"])):
                    delta = (row["energy_ev"] - ref["energy_ev"]) / nist.HARTREE2EV
                    if abs(delta) > 1e-6:
                        raise RuntimeError(f"{name} {kind} step {step}: {mode} reached another energy ({delta:.1e} Ha)")
            later = {mode: rows[1:] for mode, rows in runs.items()}
            summary = {mode: {"mean_seconds": float(np.mean([r["seconds"] for r in rows])),
                              "mean_cycles": float(np.mean([r["cycles"] for r in rows]))}
                       for mode, rows in later.items()}
            shifts = [float(np.linalg.norm(b - a, axis=1).max()) for a, b in zip(path, path[1:])]
            result["runs"][f"{name}/{kind}"] = {"steps": len(path), "max_shift_angstrom": shifts,
                                                "per_step": runs, "summary": summary}
            line = ", ".join(f"{m} {s['mean_cycles']:.1f} cyc {s['mean_seconds']:.2f} s" for m, s in summary.items())
            print(f"{name} {kind} ({len(path)} geometries): {line}", file=sys.stderr, flush=True)
    overall = {mode: {"mean_seconds": float(np.mean([r["summary"][mode]["mean_seconds"]
                                                      for r in result["runs"].values()])),
                      "mean_cycles": float(np.mean([r["summary"][mode]["mean_cycles"]
                                                     for r in result["runs"].values()]))}
               for mode in MODES}
    result["overall"] = overall
    return result


def main(argv=None) -> int:
    """Command line (see the module doc)."""
    from scfguess.model.registry import load_model

    parser = argparse.ArgumentParser(prog="python -m workflows.checks.ase_guess", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the default model)")
    parser.add_argument("--md-steps", type=int, default=20)
    parser.add_argument("--bfgs-steps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/ase-guess/ase-guess.json"))
    args = parser.parse_args(argv)
    model = load_model(args.model)
    result = {"model": model.name, "sha256": model.sha256, **measure(model, args.md_steps, args.bfgs_steps)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["overall"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
