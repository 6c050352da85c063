"""What the ML guess costs against one SCF cycle of the same molecule, part by part, and at what peak memory.

    python -m workflows.checks.converter_profile peptides:gly8 nci-gt100:nci-2754 [--out FILE.json]

For each molecule (``SET:ID`` of an SCFbench set), PBE/def2-SVP with SCFbench's SCF settings (density fitting,
grid level 3), two fresh processes with the same ``max_memory``:

- the guess: model inference, then the converter's parts (J of the fitted density, V_xc on the converter's grid,
  diagonalisation), seconds each, and the process's peak RSS; then (untimed) what the converter's screened J and
  screened grid partition change against exact ones (:func:`screening_errors`);
- the SCF: the SCF grid built, then two SCF cycles from the guess (Fock build + diagonalisation; the first also
  sets up PySCF's direct RI-J), seconds of the second, and the process's peak RSS. The first cycle's Fock matrix
  also scores the guess: its energy and orbital-gradient norm (SCFbench's ``gnorm``), and those of minao's guess
  from one more Fock build, so molecules too large for a full SCF pair still show what the guess is worth.

The figure of merit is ``guess_per_cycle`` = (inference + conversion) / (seconds of one SCF cycle). Threads follow
``OMP_NUM_THREADS``; run it on an otherwise idle machine for timings you quote. ``--out`` is written after each
molecule, and a rerun skips the molecules it already holds.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

SETTINGS = {"basis": "def2-svp", "xc": "pbe"}


def _structure(spec: str):
    from scfbench.sets import set_entries

    set_name, _, molecule = spec.partition(":")
    for entry in set_entries(set_name):
        if entry.id == molecule:
            return entry.builder()
    raise ValueError(f"no molecule {molecule!r} in set {set_name!r}")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def profile_guess(spec: str, max_memory: int, guess_file: str, errors_up_to: int = 150) -> dict:
    """Inference and the converter's parts for one molecule; saves the guess for :func:`profile_cycle`. Up to
    ``errors_up_to`` atoms also :func:`screening_errors` (their exact references grow as N_atoms² per point)."""
    import numpy as np

    from scfguess.guess import ml_guess, predict_coefficients
    from scfguess.model.registry import load_model
    from scfguess.scf import ScfSettings, make_scf
    from scfguess.structures import to_mole

    structure = _structure(spec)
    mol = to_mole(structure, SETTINGS["basis"], max_memory=max_memory)
    mf = make_scf(mol, SETTINGS["xc"], ScfSettings(max_memory=max_memory))
    guess = ml_guess(mf, load_model())
    np.save(guess_file, guess.dm)
    row = {"molecule": spec, "natoms": structure.natoms, "nao": int(mol.nao), "model": guess.model.name,
           "inference_seconds": guess.inference_seconds, "conversion_seconds": guess.conversion_seconds,
           "conversion_parts": guess.extra["converter_parts"], "guess_peak_rss_mb": _peak_rss_mb()}
    if structure.natoms <= errors_up_to:
        row.update(screening_errors(mf, predict_coefficients(mol, guess.model)))  # the guess's own model
    return row


def screening_errors(mf, prediction) -> dict:
    """What the converter's two shortcuts change for this guess, against the quadrature's own error (Hartree).

    ``coulomb_screening_error``: max |ΔJ| of the guess's J at the converter's screening against the exact default;
    ``grid_screening_error``: max |ΔV_xc| of the screened Becke partition against PySCF's on the same level-1
    grid; ``grid_level_error``: max |ΔV_xc| of that level-1 grid against level 3 (the scale both are judged by).
    """
    import numpy as np
    from pyscf import dft

    from scfguess.density.auxbasis import make_auxmol
    from scfguess.density.converter import (DEFAULT_GRIDS_LEVEL, GUESS_COULOMB_SCREENING, _converter_grids,
                                            xc_potential)
    from scfguess.density.electrons import density_on_points
    from scfguess.density.fitting import coulomb_matrix

    mol, ni = mf.mol, mf._numint
    auxmol = make_auxmol(mol, prediction.model.auxbasis)
    errors = {"coulomb_screening_error": float(np.abs(
        coulomb_matrix(mol, auxmol, prediction.coeffs, screening=GUESS_COULOMB_SCREENING)
        - coulomb_matrix(mol, auxmol, prediction.coeffs)).max())}

    def vxc(grids):
        def density(ao, mask, coords, xctype):
            return density_on_points(auxmol, prediction.coeffs, coords, xctype)
        return xc_potential(ni, mol, grids, mf.xc, density)[0]

    screened = vxc(_converter_grids(mf, DEFAULT_GRIDS_LEVEL))
    grids = {}
    for level in (DEFAULT_GRIDS_LEVEL, 3):
        grids[level] = dft.gen_grid.Grids(mol)
        grids[level].level = level
        grids[level].build(with_non0tab=True)
    full = vxc(grids[DEFAULT_GRIDS_LEVEL])
    errors["grid_screening_error"] = float(np.abs(screened - full).max())
    errors["grid_level_error"] = float(np.abs(full - vxc(grids[3])).max())
    return errors


def profile_cycle(spec: str, max_memory: int, guess_file: str) -> dict:
    """The SCF grid, then two SCF cycles (Fock build + diagonalisation) from the saved guess; the guess's and
    minao's energy and orbital-gradient norm."""
    import numpy as np

    from scfbench.guesses import commutator_norm
    from scfguess.scf import ScfSettings, make_scf
    from scfguess.structures import to_mole

    mol = to_mole(_structure(spec), SETTINGS["basis"], max_memory=max_memory)
    mf = make_scf(mol, SETTINGS["xc"], ScfSettings(max_memory=max_memory))
    dm = np.load(guess_file)
    t0 = time.perf_counter()
    mf.grids.build(with_non0tab=True)
    grid_seconds = time.perf_counter() - t0
    h1e, s1e = mf.get_hcore(), mf.get_ovlp()
    cycles, quality = [], {}
    for cycle in range(2):
        t0 = time.perf_counter()
        vhf = mf.get_veff(mol, dm)
        fock = mf.get_fock(h1e, s1e, vhf, dm)
        mo_energy, mo_coeff = mf.eig(fock, s1e)
        cycles.append(time.perf_counter() - t0)
        if cycle == 0:
            quality = {"guess_energy": float(mf.energy_tot(dm, h1e, vhf)),
                       "guess_gnorm": commutator_norm(fock, dm, s1e)}
        dm = mf.make_rdm1(mo_coeff, mf.get_occ(mo_energy, mo_coeff))
    minao = mf.get_init_guess(mol, "minao")
    vhf = mf.get_veff(mol, minao)
    quality.update(minao_energy=float(mf.energy_tot(minao, h1e, vhf)),
                   minao_gnorm=commutator_norm(mf.get_fock(h1e, s1e, vhf, minao), minao, s1e))
    return {"scf_grid_seconds": grid_seconds, "first_cycle_seconds": cycles[0], "cycle_seconds": cycles[1],
            "scf_peak_rss_mb": _peak_rss_mb(), **quality}


def profile(spec: str, max_memory: int, workdir: Path, errors_up_to: int = 150) -> dict:
    """Both halves for one molecule, each in its own fresh process (peak memory of each alone)."""
    guess_file = str(workdir / "guess.npy")
    row = {}
    for part, extra in ((profile_guess, (errors_up_to,)), (profile_cycle, ())):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            row.update(pool.submit(part, spec, max_memory, guess_file, *extra).result())
    row["guess_per_cycle"] = (row["inference_seconds"] + row["conversion_seconds"]) / row["cycle_seconds"]
    return row


def main(argv=None) -> int:
    """Command line (see the module docstring)."""
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m workflows.checks.converter_profile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("molecules", nargs="+", help="SET:ID, e.g. peptides:gly8")
    parser.add_argument("--max-memory", type=int, default=4000, help="MB for PySCF in both processes")
    parser.add_argument("--errors-up-to", type=int, default=150, metavar="N",
                        help="report the screening errors for molecules of at most N atoms (default 150)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/converter-profile/profile.json"))
    args = parser.parse_args(argv)
    try:
        rows = _done_rows(args.out, args.max_memory)
        done = {row["molecule"] for row in rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for spec in args.molecules:
                if spec in done:
                    print(f"converter_profile: {spec} already in {args.out}, skipped", file=sys.stderr)
                    continue
                rows.append(profile(spec, args.max_memory, Path(tmp), args.errors_up_to))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                _write_rows(args.out, args.max_memory, rows)  # after each molecule: a rerun resumes
    except ValueError as exc:
        print(f"converter_profile: {exc}", file=sys.stderr)
        return 2
    return 0


def _write_rows(out: Path, max_memory: int, rows: list) -> None:
    """Replace ``out`` in one step (a kill while writing leaves the earlier file whole)."""
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps({"settings": SETTINGS, "max_memory": max_memory, "rows": rows}, indent=1) + "\n")
    partial.replace(out)


def _done_rows(out: Path, max_memory: int) -> list:
    """The rows an earlier run of the same settings left in ``out`` (none if it does not exist)."""
    if not out.exists():
        return []
    earlier = json.loads(out.read_text())
    if earlier.get("settings") != SETTINGS or earlier.get("max_memory") != max_memory:
        raise ValueError(f"{out} holds a profile of other settings ({earlier.get('settings')}, max_memory "
                         f"{earlier.get('max_memory')}); choose another --out")
    return earlier["rows"]


if __name__ == "__main__":
    raise SystemExit(main())
