"""The auxiliary basis in which densities are expressed.

A density is a coefficient vector ``c`` (naux,) over the functions of an auxiliary
molecule ``auxmol`` built on the same atoms as the orbital molecule, always with
real *spherical* functions in PySCF's AO order (m = -l..l, except l = 1: x, y, z).
"""

import numpy as np
from pyscf import gto
from pyscf.df import addons

from scfguess.errors import UnsupportedElementError
from scfguess.model.irreps import DEFAULT_AUXBASIS

__all__ = ["DEFAULT_AUXBASIS", "make_auxmol", "aux_integrals", "coulomb_metric"]


def make_auxmol(mol, auxbasis=DEFAULT_AUXBASIS):
    """Build the auxiliary molecule for ``mol``.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Orbital molecule (spherical or Cartesian orbital basis).
    auxbasis : str or dict
        Anything PySCF accepts as an auxiliary basis: a name such as
        ``"def2-universal-jfit"`` or a dict such as ``pyscf.df.aug_etb(mol)`` returns.

    Returns
    -------
    pyscf.gto.Mole
        Spherical auxiliary molecule on the atoms of ``mol``.

    Raises
    ------
    ValueError
        If PySCF does not know ``auxbasis``.
    UnsupportedElementError
        If ``auxbasis`` has no functions for some element of ``mol``.
    """
    try:
        auxmol = addons.make_auxmol(mol, auxbasis)
    except (gto.basis.BasisNotFoundError, KeyError, RuntimeError) as err:
        raise ValueError(f"unknown auxiliary basis {auxbasis!r}: {err}") from None
    missing = [mol.atom_pure_symbol(i) for i in range(mol.natm) if auxmol.atom_nshells(i) == 0]
    if missing:
        name = auxbasis if isinstance(auxbasis, str) else "the given auxiliary basis"
        raise UnsupportedElementError(missing, what=f"auxiliary basis {name}")
    if auxmol.cart:
        auxmol = auxmol.copy()
        auxmol.cart = False
        auxmol.build(False, False)
    return auxmol


def aux_integrals(auxmol):
    """Integrals of the auxiliary functions over all space, q_P = ∫χ_P(r) dr.

    Only s functions integrate to non-zero values. PySCF's stored contraction
    coefficients include the radial normalisation, and libcint multiplies s
    functions by Y_00 = 1/(2√π).

    Returns
    -------
    ndarray (naux,)
        In units of bohr³ × (function units), so that N = q · c for a density c.
    """
    q = np.zeros(auxmol.nao)
    ao_loc = auxmol.ao_loc_nr()
    y00 = 0.5 / np.sqrt(np.pi)
    for ish in range(auxmol.nbas):
        if auxmol.bas_angular(ish) != 0:
            continue
        exps = auxmol.bas_exp(ish)
        coeff = auxmol._libcint_ctr_coeff(ish)  # (nprim, nctr), normalised
        q[ao_loc[ish]:ao_loc[ish + 1]] = y00 * np.einsum("p,pc->c", (np.pi / exps) ** 1.5, coeff)
    return q


def coulomb_metric(auxmol):
    """Coulomb metric J_PQ = (P|Q) of the auxiliary functions, (naux, naux), atomic units (Hartree for unit-normalised coefficients)"""
    return auxmol.intor("int2c2e", hermi=1)
