"""Densities in an auxiliary basis: the basis, Coulomb-metric fitting, the electron count, atomic references,
and the converter from coefficients to a density-matrix guess (with its screened integration grid)."""

from scfguess.density.auxbasis import DEFAULT_AUXBASIS, make_auxmol
from scfguess.density.converter import Conversion, convert, density_to_dm
from scfguess.density.electrons import electron_count, project_electron_count
from scfguess.density.fitting import fit_density

__all__ = ["DEFAULT_AUXBASIS", "make_auxmol", "fit_density", "electron_count", "project_electron_count",
           "Conversion", "convert", "density_to_dm"]
