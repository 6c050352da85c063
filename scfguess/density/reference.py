"""Atomic reference densities: the free atom's minao (SAD) density in the auxiliary basis.

A model trained in delta mode predicts the difference to these spherical references
(stored as buffers with its weights, see :class:`scfguess.model.DensityModel`).
"""

import numpy as np
from pyscf import gto, scf

from scfguess.density.fitting import fit_density
from scfguess.model.irreps import shell_angular_momenta


def atomic_reference_coefficients(symbol: str, basis: str = "def2-svp", auxbasis: str = "def2-universal-jfit"):
    """Coefficients of the free atom's minao (SAD) density, Coulomb-fitted in the auxiliary basis.

    Parameters
    ----------
    symbol : str
    basis : str
        Orbital basis of the minao projection (with its ECP where a def2 basis expects one, so iodine's
        reference holds its 25 valence electrons).
    auxbasis : str

    Returns
    -------
    ndarray (nfunc,) float64, PySCF order; components of l > 0 are zero (the atom's density is spherical).
    """
    from scfguess.structures import default_ecp

    z = gto.charge(symbol)
    mol = gto.M(atom=[[symbol, (0.0, 0.0, 0.0)]], basis=basis, ecp=default_ecp(basis, [symbol]), spin=z % 2,
                verbose=0)
    dm = scf.hf.init_guess_by_minao(mol)
    coeffs = np.asarray(fit_density(mol, dm, auxbasis=auxbasis), dtype=np.float64)
    ls = shell_angular_momenta(symbol, auxbasis)
    mask = np.array([l == 0 for l in ls for _ in range(2 * l + 1)])
    return np.where(mask, coeffs, 0.0)
