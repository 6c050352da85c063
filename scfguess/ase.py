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
``guess`` chooses where each SCF starts:

a PySCF guess name (``"minao"``, ``"atom"``, ``"huckel"``, ``"mod_huckel"``, ``"sap"``, ``"vsap"``, ``"1e"``)
    that guess at every geometry, no model needed (a baseline to measure the others against);
``"ml"``
    the ML guess (:func:`scfguess.apply`, falling back to ``fallback`` with a warning) at every geometry.

The remaining choices use the converged density matrices D(t-1), D(t-2) of the previous geometries of the same
molecule (same atoms, charge and spin, parameters unchanged); the first geometry, and any geometry after a change
of molecule, a change of parameters or an SCF that failed, starts from the ML guess:

``"previous"``
    D(t-1) (PySCF's scanner behaviour);
``"auto"`` (the default)
    ``"extrapolate"`` once two geometries are done (``"previous"`` after the first), as long as no atom moved
    more than :data:`AUTO_MAX_SHIFT` Å since the previous SCF; the ML guess after a larger jump;
``"extrapolate"``
    2 D(t-1) - D(t-2), linear extrapolation along the trajectory (exact to first order for equal steps; not
    re-purified, PySCF starts from any matrix); ``"previous"`` while only one geometry is done;
``"previous+ml"``
    D(t-1) + D_ML(t) - D_ML(t-1): the previous matrix moved by the change of the ML guess between the two
    geometries; the ML guess of every geometry is computed and kept for the next. ``"ml"`` when the previous
    geometry has no ML guess (it failed), ``"previous"`` when this one fails.

``results["scf_guess"]`` names the start actually used. An SCF started from the ML guess (``"ml"`` or
``"previous+ml"``) that does not converge is run once more from ``minao`` with a warning
(``results["scf_retry"] == "minao"``, ``results["scf_cycles_total"]`` counts both runs); if that fails too, or any
other start does not converge, ``SCFError`` is raised.

The default is measured (``python -m workflows.checks.ase_guess``, ``benchmarks/ase-guess/``): over MD and
BFGS runs of ethanol, acetamide and benzene (PBE/def2-SVP), ``"extrapolate"`` was the fastest start per step in 5
of 6 runs, 8.06 s mean against 8.44 s (``"previous+ml"``), 8.54 s (``"previous"``), 9.09 s (``"ml"``) and 9.97 s
(``"minao"``); ``"previous+ml"`` took the fewest cycles (6.3 against 6.6) but pays for an ML guess every step.
Re-measure when the default model changes.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from ase.calculators.calculator import Calculator, SCFError, all_changes
from pyscf.data import nist

from scfguess.hook import RETRY_GUESS, apply
from scfguess.scf import PYSCF_GUESSES, ScfSettings, build_scf, check_xc
from scfguess.structures import from_atoms

__all__ = ["SCFGuessCalculator", "GUESSES", "TRAJECTORY_GUESSES", "AUTO_MAX_SHIFT"]

#: Guesses that reuse converged density matrices of earlier geometries (module doc).
TRAJECTORY_GUESSES = ("auto", "previous", "extrapolate", "previous+ml")
#: Values of the ``guess`` parameter: the trajectory guesses, ``"ml"`` and every PySCF guess name.
GUESSES = (*TRAJECTORY_GUESSES, "ml", *PYSCF_GUESSES)
#: Starts that contain the ML guess; an SCF from them that does not converge is retried from minao.
_ML_STARTS = ("ml", "previous+ml")
#: ``guess="auto"`` reuses the previous density matrix when no atom moved further than this (Å).
AUTO_MAX_SHIFT = 0.1

_EV = nist.HARTREE2EV  # eV per Hartree
_ANGSTROM = nist.BOHR  # Å per Bohr


class SCFGuessCalculator(Calculator):
    """PySCF Kohn-Sham DFT for molecules, each SCF started from the ML guess, a PySCF guess or earlier steps.

    Parameters
    ----------
    basis : str
        Orbital basis.
    xc : str
        Functional (PySCF notation).
    charge : int, optional
        Total charge; None takes ``atoms.info["charge"]``, else the rounded sum of the initial charges (0 when
        none are set). Applied before any check (:func:`scfguess.structures.check_charge_spin`).
    spin : int, optional
        2S = N_alpha - N_beta (negative: more beta electrons, as in PySCF); None takes ``atoms.info["spin"]``,
        else the rounded absolute sum of the initial magnetic moments (so ``ase.build.molecule("O2")`` is a
        triplet). Open shells use UKS.
    density_fit : bool
        RI-J / RI-JK with PySCF's default auxiliary basis for ``basis`` and ``xc``.
    guess : str
        One of :data:`GUESSES`: ``"auto"`` (default), ``"ml"``, ``"previous"``, ``"extrapolate"``,
        ``"previous+ml"`` or a PySCF guess name (module doc).
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
    ``scf_cycles`` (int, the SCF that gave the result), ``scf_cycles_total`` (with an
    unconverged first run), ``scf_guess`` (the start used), ``scf_retry`` (None, or
    ``"minao"`` after an ML-started SCF that did not converge) and ``guess_seconds``.
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
        guess = _check_guess(guess)
        check_xc(xc)
        super().__init__(basis=basis, xc=xc, charge=charge, spin=spin, density_fit=density_fit, guess=guess,
                         model=model, fallback=fallback, conv_tol=conv_tol, max_cycle=max_cycle,
                         grids_level=grids_level, max_memory=max_memory, **kwargs)
        # Converged steps of the current molecule, newest last (at most two): numbers, positions (Å), charge,
        # spin, density matrix, and the ML guess of that geometry (None when it was not computed).
        self._history: list[dict] = []

    def set(self, **kwargs):
        """Change parameters; any change drops the earlier density matrices and the results."""
        if "guess" in kwargs:
            kwargs["guess"] = _check_guess(kwargs["guess"])
        changed = super().set(**kwargs)
        if changed:
            self._history = []
        return changed

    def _same_molecule(self, structure) -> bool:
        if not self._history:
            return False
        last = self._history[-1]
        return (np.array_equal(last["numbers"], structure.numbers) and last["charge"] == structure.charge
                and last["spin"] == structure.spin)

    def _choose_guess(self, structure) -> str:
        """The start for this geometry (module doc): a PySCF name, "ml", "previous", "extrapolate", "previous+ml"."""
        guess = self.parameters.guess
        if guess in PYSCF_GUESSES or guess == "ml":
            return guess
        if not self._same_molecule(structure):
            self._history = []
            return "ml"
        if guess == "auto":
            shift = np.max(np.linalg.norm(structure.positions - self._history[-1]["positions"], axis=1))
            if shift > AUTO_MAX_SHIFT:
                return "ml"
            return "extrapolate" if len(self._history) >= 2 else "previous"
        if guess == "extrapolate" and len(self._history) < 2:
            return "previous"
        if guess == "previous+ml" and self._history[-1]["dm_ml"] is None:
            return "ml"
        return guess

    def _ml_dm(self, mf):
        """The ML guess for ``mf`` through the hook (fallback and warnings as in :func:`scfguess.apply`).

        Returns the density matrix and the guess actually made ("ml" or the fallback's name).
        """
        p = self.parameters
        apply(mf, p.model, p.fallback)
        dm = mf.get_init_guess()
        return dm, mf.scfguess_info.get("guess", "ml")

    def _start(self, mf, guess):
        """Density matrix to start ``mf`` from; returns (dm, start used, ML guess of this geometry or None)."""
        if guess in PYSCF_GUESSES:
            return mf.get_init_guess(key=guess), guess, None
        if guess == "previous":
            return self._history[-1]["dm"], guess, None
        if guess == "extrapolate":
            return 2 * self._history[-1]["dm"] - self._history[-2]["dm"], guess, None
        dm_ml, made = self._ml_dm(mf)
        if made != "ml":  # the ML guess failed and the fallback was used
            if guess == "previous+ml":
                return self._history[-1]["dm"], "previous", None
            return dm_ml, made, None
        if guess == "previous+ml":
            last = self._history[-1]
            return last["dm"] + dm_ml - last["dm_ml"], guess, dm_ml
        return dm_ml, "ml", dm_ml

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Run the SCF (and the gradient when forces are asked for) for ``atoms``; fills ``self.results``."""
        super().calculate(atoms, properties, system_changes)
        p = self.parameters
        structure = from_atoms(self.atoms, "atoms", charge=p.charge, spin=p.spin)
        settings = ScfSettings(density_fit=p.density_fit, grids_level=p.grids_level, conv_tol=p.conv_tol,
                               max_cycle=p.max_cycle, max_memory=int(p.max_memory))
        mf = build_scf(structure, p.basis, p.xc, settings)
        t0 = time.perf_counter()
        dm0, guess, dm_ml = self._start(mf, self._choose_guess(structure))
        guess_seconds = time.perf_counter() - t0
        mf.kernel(dm0=dm0)
        total, retry = int(mf.cycles), None
        if not mf.converged and guess in _ML_STARTS:
            warnings.warn(f"scfguess: the SCF from the {guess!r} guess did not converge in {mf.cycles} cycles; "
                          f"running it once more from {RETRY_GUESS!r}.", stacklevel=2)
            retry = RETRY_GUESS
            first_cycles, first_energy = int(mf.cycles), float(mf.e_tot)
            mf.kernel(dm0=mf.get_init_guess(key=RETRY_GUESS))
            total += int(mf.cycles)
            info = getattr(mf, "scfguess_info", None)
            if info is not None:
                info.update(retry=retry, ml_cycles=first_cycles, ml_energy=first_energy)
        if not mf.converged:
            self._history = []
            again = f", nor in {p.max_cycle} more from {retry!r}" if retry else ""
            raise SCFError(f"the SCF did not converge in {p.max_cycle} cycles (guess {guess!r}){again}.")
        self._history = self._history[-1:] + [{
            "numbers": structure.numbers, "positions": structure.positions, "charge": structure.charge,
            "spin": structure.spin, "dm": np.asarray(mf.make_rdm1()), "dm_ml": dm_ml}]
        self.results["energy"] = mf.e_tot * _EV
        self.results["dipole"] = np.asarray(mf.dip_moment(unit="AU", verbose=0)) * _ANGSTROM
        self.results["scf_cycles"] = int(mf.cycles)
        self.results["scf_cycles_total"] = total
        self.results["scf_guess"] = guess
        self.results["scf_retry"] = retry
        self.results["guess_seconds"] = guess_seconds
        if "forces" in properties:
            grad = mf.nuc_grad_method()
            grad.grid_response = True
            grad.verbose = 0
            self.results["forces"] = -grad.kernel() * (_EV / _ANGSTROM)


def _check_guess(guess) -> str:
    """``guess`` in lower case if it is one of :data:`GUESSES`; ``ValueError`` otherwise."""
    name = guess.lower() if isinstance(guess, str) else guess
    if name not in GUESSES:
        raise ValueError(f"guess must be one of {', '.join(GUESSES)}, got {guess!r}.")
    return name
