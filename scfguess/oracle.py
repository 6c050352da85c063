"""The oracle guess: the exactly fitted converged density passed through the converter.

It bounds what any density model in the same auxiliary basis can reach with this
converter; it is a yardstick, not a method (it needs the converged answer).
"""

import numpy as np

from scfguess.auxbasis import DEFAULT_AUXBASIS
from scfguess.converter import convert
from scfguess.fitting import fit_density


def _check_same_molecule(mol_ref, mol):
    same = (mol_ref.natm == mol.natm
            and np.array_equal(mol_ref.atom_charges(), mol.atom_charges())
            and np.allclose(mol_ref.atom_coords(), mol.atom_coords(), atol=1e-6))
    if not same:
        raise ValueError("the reference calculation is for a different molecule or geometry")


def oracle_conversion(mf_ref, mf, auxbasis=DEFAULT_AUXBASIS, **convert_kwargs):
    """Fit ``mf_ref``'s density and convert it for ``mf``.

    Parameters
    ----------
    mf_ref : pyscf SCF object
        A converged calculation on the same molecule (basis and functional may differ).
    mf : pyscf SCF object
        The calculation to start.

    Returns
    -------
    scfguess.converter.Conversion
        Its ``seconds`` include the fit.
    """
    _check_same_molecule(mf_ref.mol, mf.mol)
    if mf_ref.mo_coeff is None:
        raise ValueError("the reference calculation has not been run")
    coeffs = fit_density(mf_ref.mol, mf_ref.make_rdm1(), auxbasis)
    return convert(mf, coeffs, auxbasis, **convert_kwargs)


def oracle_guess(mf_ref, mf, auxbasis=DEFAULT_AUXBASIS, **convert_kwargs):
    """Density-matrix guess for ``mf`` from the fitted converged density of ``mf_ref``.

    Returns
    -------
    ndarray
        What ``mf.make_rdm1()`` returns.
    """
    return oracle_conversion(mf_ref, mf, auxbasis, **convert_kwargs).dm
