"""scfguess: electron-density initial guesses that make PySCF SCF converge in fewer cycles.

Public functions
----------------
fit_density      Coulomb-metric fit of a density matrix in an auxiliary basis.
density_to_dm    Density coefficients → density-matrix guess for a PySCF SCF object.
oracle_guess     The fitted converged density as a guess (a bound, not a method).
init_guess       Predict the density with a model and convert it (the entry point).
"""

from scfguess.errors import ModelNotInstalledError, UnsupportedElementError
from scfguess.fitting import fit_density
from scfguess.converter import density_to_dm
from scfguess.oracle import oracle_guess
from scfguess.guess import init_guess
from scfguess.hook import apply, init_guess_by_ml

__version__ = "0.1.0"

__all__ = [
    "fit_density", "density_to_dm", "oracle_guess", "init_guess", "apply", "init_guess_by_ml",
    "UnsupportedElementError", "ModelNotInstalledError", "__version__",
]
