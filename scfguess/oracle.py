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
        Its ``seconds`` are those of the conversion (the fit is not included).
    """
    if mf_ref.mo_coeff is None:
        raise ValueError("the reference calculation has not been run")
    return conversion_from_dm(mf_ref.mol, mf_ref.make_rdm1(), mf, auxbasis, **convert_kwargs)


def conversion_from_dm(mol_ref, dm_ref, mf, auxbasis=DEFAULT_AUXBASIS, **convert_kwargs):
    """Fit a converged density matrix of ``mol_ref`` and convert it for ``mf`` (same molecule and geometry).

    Parameters
    ----------
    mol_ref : pyscf.gto.Mole
        Molecule (and orbital basis) of ``dm_ref``.
    dm_ref : ndarray, shape (nao, nao) or (2, nao, nao)
        Converged density matrix.
    mf : pyscf SCF object
        The calculation to start.

    Returns
    -------
    scfguess.converter.Conversion
    """
    _check_same_molecule(mol_ref, mf.mol)
    coeffs = fit_density(mol_ref, dm_ref, auxbasis)
    return convert(mf, coeffs, auxbasis, **convert_kwargs)


def oracle_guess(mf_ref, mf, auxbasis=DEFAULT_AUXBASIS, **convert_kwargs):
    """Density-matrix guess for ``mf`` from the fitted converged density of ``mf_ref``.

    Returns
    -------
    ndarray
        What ``mf.make_rdm1()`` returns.
    """
    return oracle_conversion(mf_ref, mf, auxbasis, **convert_kwargs).dm
