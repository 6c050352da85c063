"""ASE calculator: PySCF DFT started from the ML guess (energies in eV, forces in eV/Å, dipoles in e·Å).

>>> from ase.build import molecule
>>> from scfguess.ase import SCFGuessCalculator
>>> atoms = molecule("H2O")
>>> atoms.calc = SCFGuessCalculator(basis="def2-svp", xc="pbe")
>>> atoms.get_potential_energy()   # eV
>>> atoms.calc.results["scf_cycles"]

This module is the unit boundary: ASE gives Å, PySCF works in Bohr and Hartree; the
conversion uses ``pyscf.data.nist`` constants here and nowhere else.

Guesses along a trajectory
--------------------------
The first geometry starts from the ML guess (:func:`scfguess.apply`, falling back to
``fallback`` with a warning). Each later geometry of the same molecule starts from

``"ml"``
    the ML guess again;
``"previous"``
    the converged density matrix of the previous geometry (PySCF's scanner behaviour);
``"auto"``
    ``"previous"`` when no atom moved more than :data:`AUTO_MAX_SHIFT` Å since the
    previous SCF, otherwise ``"ml"``.

The default is measured (``python -m workflows.ase_check --model NAME``, ``results/ase-check-NAME.json``): ethanol,
PBE/def2-SVP RI-J, grid level 2, conv_tol 1e-8, models nequip-l-v2 and nequip-l-v5-g (the same counts); mean SCF
cycles per step after the first (the ML guess also costs about one SCF cycle of converter time):

- BFGS, 6 steps of 0.007-0.08 Å: minao 9.0, ML 6.0, previous 6.5, oracle (a perfect model) 5.0;
- Velocity Verlet, 300 K, 0.5 fs, 5 steps of 0.016-0.020 Å: minao 9.0, ML 6.0, previous 5.8, oracle 5.0.

The previous density matrix needed 7 cycles on steps of 0.02-0.08 Å and 5-6 on smaller ones; the ML guess 6
throughout. Counting its converter time, the ML guess is not cheaper than the previous matrix for steps up to
0.1 Å, hence ``"previous"`` for those and the ML guess for larger jumps. A model closer to the oracle would make
``"ml"`` the better choice: re-measure when the default model changes.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, SCFError, all_changes
from pyscf.data import nist

from scfguess.hook import apply
from scfguess.scf import ScfSettings, build_scf, check_xc
from scfguess.structures import from_atoms

__all__ = ["SCFGuessCalculator", "GUESSES", "AUTO_MAX_SHIFT"]

#: Values of the ``guess`` parameter.
GUESSES = ("auto", "ml", "previous")
#: ``guess="auto"`` reuses the previous density matrix when no atom moved further than this (Å).
AUTO_MAX_SHIFT = 0.1

_EV = nist.HARTREE2EV  # eV per Hartree
_ANGSTROM = nist.BOHR  # Å per Bohr


class SCFGuessCalculator(Calculator):
    """PySCF Kohn-Sham DFT for molecules, each SCF started from the ML guess or the previous step.

    Parameters
    ----------
    basis : str
        Orbital basis.
    xc : str
        Functional (PySCF notation).
    charge : int, optional
        Total charge; None takes ``atoms.info["charge"]``, else the rounded sum of the initial charges (0 when
        none are set).
    spin : int, optional
        2S = N_alpha - N_beta; None takes ``atoms.info["spin"]``, else the rounded absolute sum of the initial
        magnetic moments (so ``ase.build.molecule("O2")`` is a triplet). Open shells use UKS.
    density_fit : bool
        RI-J / RI-JK with PySCF's default auxiliary basis for ``basis`` and ``xc``.
    guess : {"auto", "ml", "previous"}
        Start of later geometries (module doc); the first geometry always uses the ML guess.
    model : None, str, path or loaded model
        Density model (None = the default model).
    fallback : str or None
        PySCF guess used with a warning when the ML guess fails; None raises instead.
    conv_tol : float
        SCF energy convergence threshold, Hartree.
    max_cycle : int
        Maximum SCF cycles.
    grids_level : int
        PySCF DFT grid level (0-9).
    max_memory : int
        PySCF memory limit, MB.

    Notes
    -----
    ``implemented_properties``: ``energy`` (eV), ``forces`` (eV/Å, analytic, with the DFT
    grid response so that they are the exact derivative of the energy and MD conserves
    energy), ``dipole`` (e·Å, about the origin of the coordinates). Extra results:
    ``scf_cycles`` (int) and ``scf_guess`` ("ml", "previous" or the fallback used).
    Periodic ``Atoms`` are refused with ``ValueError``; an SCF that does not converge
    raises ``ase.calculators.calculator.SCFError``.
    """

    implemented_properties = ["energy", "forces", "dipole"]
    default_parameters = dict(basis="def2-svp", xc="pbe", charge=None, spin=None, density_fit=True, guess="auto",
                              model=None, fallback="minao", conv_tol=1e-9, max_cycle=50, grids_level=3,
                              max_memory=4000)

    def __init__(self, basis="def2-svp", xc="pbe", charge=None, spin=None, density_fit=True, guess="auto", *,
                 model=None, fallback="minao", conv_tol=1e-9, max_cycle=50, grids_level=3, max_memory=4000,
                 **kwargs):
        if guess not in GUESSES:
            raise ValueError(f"guess must be one of {', '.join(GUESSES)}, got {guess!r}.")
        check_xc(xc)
        super().__init__(basis=basis, xc=xc, charge=charge, spin=spin, density_fit=density_fit, guess=guess,
                         model=model, fallback=fallback, conv_tol=conv_tol, max_cycle=max_cycle,
                         grids_level=grids_level, max_memory=max_memory, **kwargs)
        self._previous = None  # (numbers, positions Å, charge, spin, density matrix) of the last converged SCF

    def set(self, **kwargs):
        """Change parameters; any change drops the previous density matrix and the results."""
        changed = super().set(**kwargs)
        if changed:
            self._previous = None
        return changed

    def _choose_guess(self, structure):
        if self._previous is None:
            return "ml"
        numbers, positions, charge, spin, _ = self._previous
        same = (np.array_equal(numbers, structure.numbers) and charge == structure.charge
                and spin == structure.spin)
        if not same:
            return "ml"
        guess = self.parameters.guess
        if guess == "auto":
            shift = np.max(np.linalg.norm(structure.positions - positions, axis=1))
            return "previous" if shift <= AUTO_MAX_SHIFT else "ml"
        return guess

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Run the SCF (and the gradient when forces are asked for) for ``atoms``; fills ``self.results``."""
        super().calculate(atoms, properties, system_changes)
        p = self.parameters
        structure = from_atoms(self.atoms, "atoms", charge=p.charge, spin=p.spin)
        settings = ScfSettings(density_fit=p.density_fit, grids_level=p.grids_level, conv_tol=p.conv_tol,
                               max_cycle=p.max_cycle, max_memory=int(p.max_memory))
        mf = build_scf(structure, p.basis, p.xc, settings)
        guess = self._choose_guess(structure)
        if guess == "previous":
            mf.kernel(dm0=self._previous[4])
        else:
            apply(mf, p.model, p.fallback).kernel()
            guess = mf.scfguess_info.get("guess", "ml")
        if not mf.converged:
            self._previous = None
            raise SCFError(f"the SCF did not converge in {p.max_cycle} cycles (guess {guess!r}).")
        self._previous = (structure.numbers, structure.positions, structure.charge, structure.spin,
                          mf.make_rdm1())
        self.results["energy"] = mf.e_tot * _EV
        self.results["dipole"] = np.asarray(mf.dip_moment(unit="AU", verbose=0)) * _ANGSTROM
        self.results["scf_cycles"] = int(mf.cycles)
        self.results["scf_guess"] = guess
        if "forces" in properties:
            grad = mf.nuc_grad_method()
            grad.grid_response = True
            grad.verbose = 0
            self.results["forces"] = -grad.kernel() * (_EV / _ANGSTROM)
