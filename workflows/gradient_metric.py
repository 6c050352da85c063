"""Orbital-gradient metric of a density error: how much a coefficient error disturbs the guess's Fock matrix.

An error Δc in the density coefficients changes the Coulomb matrix of the guess by ΔJ_μν = Σ_P (μν|P) Δc_P. What
slows the SCF is the occupied-virtual block of that change in the converged orbitals, ΔF_ia (it rotates the
guess orbitals away from the converged ones and is, to first order, the orbital gradient of the guess). Its
squared norm is a quadratic form in Δc,

    ‖ΔJ_ov‖² = Δcᵀ M Δc,   M_PQ = Σ_ia (P|ia)(ia|Q),

with (P|ia) the three-centre integrals in the orbitals of the label density's Fock matrix (h + J + V_xc of the fitted
coefficients, PBE on a level-1 grid, the converter's construction). The Coulomb metric (P|Q) weighs every part
of the density's field alike; M keeps only what reaches the occupied-virtual block. The V_xc part of ΔF is left
out: it would need the exchange-correlation kernel integrated against every auxiliary function on the grid.
"""

from __future__ import annotations

import numpy as np

DEFAULT_ORBITAL_BASIS = "def2-svp"


def label_orbitals(mol, auxmol, coeffs, xc: str = "pbe", grids_level: int = 1):
    """Occupied and virtual orbitals of the Fock matrix h + J[c] + V_xc[ρ_c] of a fitted density (closed shell).

    Parameters
    ----------
    mol, auxmol : pyscf.gto.Mole
        Orbital and auxiliary molecules.
    coeffs : array (naux,)
        Density coefficients, PySCF aux order.
    xc : str
        Functional of V_xc.
    grids_level : int
        DFT grid level for V_xc.

    Returns
    -------
    occ, vir : ndarray (nao, nocc), (nao, nvir)
        Orbital coefficients, orthonormal in the overlap metric.
    """
    import scipy.linalg
    from pyscf import dft

    from scfguess.converter import density_fock

    if mol.nelectron % 2:
        raise ValueError(f"gradient metric needs a closed-shell structure; this one has {mol.nelectron} electrons.")
    c = np.asarray(coeffs, dtype=np.float64)
    if c.shape != (auxmol.nao,):
        raise ValueError(f"{c.shape[0]} coefficients for {auxmol.nao} auxiliary functions.")
    mf = dft.RKS(mol, xc=xc)
    fock, _, _ = density_fock(mf, auxmol, c, grids_level)  # the converter's construction
    _, mo = scipy.linalg.eigh(fock, mf.get_ovlp())
    nocc = mol.nelectron // 2
    return mo[:, :nocc], mo[:, nocc:]


def ov_coulomb_metric(mol, auxmol, occ, vir) -> np.ndarray:
    """M_PQ = Σ_ia (P|ia)(ia|Q) for the given orbitals; (naux, naux), Hartree² per unit coefficient²."""
    from pyscf import lib

    from scfguess.fitting import int3c_blocks

    t = np.empty((auxmol.nao, occ.shape[1] * vir.shape[1]))
    for p0, p1, ints in int3c_blocks(mol, auxmol):
        block = lib.unpack_tril(np.ascontiguousarray(ints.T))  # (p1-p0, nao, nao)
        t[p0:p1] = np.einsum("pmn,mi,na->pia", block, occ, vir, optimize=True).reshape(p1 - p0, -1)
    return t @ t.T


def gradient_metric(numbers, positions, coeffs, auxbasis: str, basis: str = DEFAULT_ORBITAL_BASIS,
                    xc: str = "pbe", grids_level: int = 1) -> np.ndarray:
    """Occupied-virtual Coulomb-response metric M of one closed-shell structure.

    Parameters
    ----------
    numbers : array (n,) int
        Atomic numbers.
    positions : array (n, 3)
        Å.
    coeffs : array (naux,)
        Reference density coefficients (PySCF aux order) whose Fock matrix defines the orbitals.
    auxbasis, basis, xc : str
        Auxiliary basis of the coefficients, orbital basis and functional of the orbitals.
    grids_level : int
        DFT grid level for V_xc of the orbitals.

    Returns
    -------
    ndarray (naux, naux) float64
        Hartree²; Δcᵀ M Δc is the squared Frobenius norm of the occupied-virtual block of ΔJ.
    """
    from pyscf import gto
    from pyscf.data.elements import ELEMENTS

    from scfguess.auxbasis import make_auxmol

    symbols = [ELEMENTS[int(z)] for z in numbers]
    mol = gto.M(atom=list(zip(symbols, np.asarray(positions, dtype=float).tolist())), unit="Angstrom",
                basis=basis, spin=int(np.sum(numbers)) % 2, verbose=0)
    auxmol = make_auxmol(mol, auxbasis)
    occ, vir = label_orbitals(mol, auxmol, coeffs, xc, grids_level)
    return ov_coulomb_metric(mol, auxmol, occ, vir)
