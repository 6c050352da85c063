"""Atomic reference densities: the free atom's SAD density in the auxiliary basis.

A model trained in delta mode predicts the difference to these spherical references
(stored as buffers with its weights, see :class:`scfguess.model.DensityModel`). The SAD density is PySCF's minao
projection, except for atoms under an ECP: there the projection loses electrons (iodine at def2-SVP holds fewer
than its 25 valence electrons, and its fit oscillates in sign; ``tests/test_model.py``), so the spherically averaged
atomic Hartree-Fock density (``init_guess_by_atom``) is used instead.
"""

import numpy as np
from pyscf import gto, scf

from scfguess.density.fitting import fit_density
from scfguess.model.irreps import shell_angular_momenta


def atomic_reference_coefficients(symbol: str, basis: str = "def2-svp", auxbasis: str = "def2-universal-jfit"):
    """Coefficients of the free atom's SAD density (module docstring), Coulomb-fitted in the auxiliary basis.

    Parameters
    ----------
    symbol : str
    basis : str
        Orbital basis of the atomic density (with its ECP where a def2 basis expects one, so iodine's
        reference holds its 25 valence electrons).
    auxbasis : str

    Returns
    -------
    ndarray (nfunc,) float64, PySCF order; components of l > 0 are zero (the atom's density is spherical).
    """
    from scfguess.structures import default_ecp

    z = gto.charge(symbol)
    ecp = default_ecp(basis, [symbol])
    mol = gto.M(atom=[[symbol, (0.0, 0.0, 0.0)]], basis=basis, ecp=ecp, spin=z % 2, verbose=0)
    if ecp:
        dm = scf.hf.init_guess_by_atom(mol)
        dm = dm[0] + dm[1] if dm.ndim == 3 else dm
    else:
        dm = scf.hf.init_guess_by_minao(mol)
    coeffs = np.asarray(fit_density(mol, dm, auxbasis=auxbasis), dtype=np.float64)
    ls = shell_angular_momenta(symbol, auxbasis)
    mask = np.array([l == 0 for l in ls for _ in range(2 * l + 1)])
    return np.where(mask, coeffs, 0.0)
