"""scfguess: electron-density initial guesses that make PySCF SCF converge in fewer cycles.

Public functions
----------------
apply            Make one PySCF SCF object start from the ML guess (the hook).
init_guess       Predict the density with a model and convert it for an SCF object.
init_guess_by_ml The ML guess for a molecule, like PySCF's ``init_guess_by_minao``.
fit_density      Coulomb-metric fit of a density matrix in an auxiliary basis.
density_to_dm    Density coefficients → density-matrix guess for a PySCF SCF object.
oracle_guess     The fitted converged density as a guess (a bound, not a method).
"""

from scfguess.density import density_to_dm, fit_density
from scfguess.errors import ModelNotInstalledError, UnsupportedElementError
from scfguess.guess import init_guess, init_guess_by_ml, oracle_guess
from scfguess.hook import apply

__version__ = "0.2.0"

__all__ = [
    "fit_density", "density_to_dm", "oracle_guess", "init_guess", "apply", "init_guess_by_ml",
    "UnsupportedElementError", "ModelNotInstalledError", "__version__",
]
