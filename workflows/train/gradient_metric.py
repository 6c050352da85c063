"""Orbital-gradient metric of a density error: how much a coefficient error disturbs the guess's Fock matrix.

An error Δc in the density coefficients changes the Coulomb matrix of the guess by ΔJ_μν = Σ_P (μν|P) Δc_P. What
slows the SCF is the occupied-virtual block of that change in the converged orbitals, ΔF_ia (it rotates the
guess orbitals away from the converged ones; the guess's orbital gradient is this block amplified by the
Coulomb response of the rotation, see the screened metric below). Its
squared norm is a quadratic form in Δc,

    ‖ΔJ_ov‖² = Δcᵀ M Δc,   M_PQ = Σ_ia (P|ia)(ia|Q),

with (P|ia) the three-centre integrals in the orbitals of the label density's Fock matrix (h + J + V_xc of the fitted
coefficients, PBE on a level-1 grid, the converter's construction). The Coulomb metric (P|Q) weighs every part
of the density's field alike; M keeps only what reaches the occupied-virtual block. The V_xc part of ΔF is left
out: it would need the exchange-correlation kernel integrated against every auxiliary function on the grid.

**Screened metric.** The SCF does not see ΔF_ia itself but the orbital gradient of the density matrix that
diagonalising the guess Fock matrix gives. To first order that rotates the orbitals by κ_ia = −ΔF_ia/(ε_a − ε_i),
and the Coulomb potential of the rotated density adds 4 Σ_jb (ia|jb) κ_jb, so the guess's gradient is
g = −(1 + 4 V E⁻¹) ΔF_ov with V_ia,jb = (ia|jb) and E the orbital-energy gaps. With V in the auxiliary basis
(V ≈ W J⁻¹ Wᵀ, W_ia,P = (ia|P), J = (P|Q)) and ΔF_ov = W Δc this is g = −W R Δc, R = 1 + 4 J⁻¹ Wᵀ E⁻¹ W, so

    ‖g‖² = Δcᵀ Rᵀ M R Δc.

The response term amplifies long-range, small-gap errors (charge moved across the molecule); at 28-40 atoms
‖g‖ is 2.5-3 times ‖ΔF_ov‖. Measured on a 40-atom molecule (``nequip-l-v5-g``, J error only,
``python -m workflows.checks.error_split``): ‖g‖ × 2√2, the commutator norm SCFbench reports, predicts 0.221 Hartree
against 0.204 measured; the unscreened ‖ΔF_ov‖ × 2√2 gives 0.071.
"""

from __future__ import annotations

import numpy as np

DEFAULT_ORBITAL_BASIS = "def2-svp"


def label_orbitals(mol, auxmol, coeffs, xc: str = "pbe", grids_level: int = 1):
    """Occupied and virtual orbitals of the Fock matrix h + J[c] + V_xc[ρ_c] of a fitted density (closed shell);
    :func:`label_orbitals_and_gaps` without the gaps.
    """
    occ, vir, _ = label_orbitals_and_gaps(mol, auxmol, coeffs, xc, grids_level)
    return occ, vir


def label_orbitals_and_gaps(mol, auxmol, coeffs, xc: str = "pbe", grids_level: int = 1):
    """Occupied and virtual orbitals of the Fock matrix h + J[c] + V_xc[ρ_c] of a fitted density (closed shell),
    and their orbital-energy gaps.

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
    gaps : ndarray (nocc, nvir)
        ε_a − ε_i, Hartree.
    """
    import scipy.linalg
    from pyscf import dft

    from scfguess.density.converter import density_fock

    if mol.nelectron % 2:
        raise ValueError(f"gradient metric needs a closed-shell structure; this one has {mol.nelectron} electrons.")
    c = np.asarray(coeffs, dtype=np.float64)
    if c.shape != (auxmol.nao,):
        raise ValueError(f"{c.shape[0]} coefficients for {auxmol.nao} auxiliary functions.")
    mf = dft.RKS(mol, xc=xc)
    fock, _, _ = density_fock(mf, auxmol, c, grids_level)  # the converter's construction
    energies, mo = scipy.linalg.eigh(fock, mf.get_ovlp())
    nocc = mol.nelectron // 2
    return mo[:, :nocc], mo[:, nocc:], energies[nocc:][None, :] - energies[:nocc][:, None]


def ov_three_center(mol, auxmol, occ, vir) -> np.ndarray:
    """(P|ia) for the given orbitals; (naux, nocc·nvir), Hartree per unit coefficient. ``w @ w.T`` is M."""
    from pyscf import lib

    from scfguess.density.fitting import int3c_blocks

    w = np.empty((auxmol.nao, occ.shape[1] * vir.shape[1]))
    for p0, p1, ints in int3c_blocks(mol, auxmol):
        block = lib.unpack_tril(np.ascontiguousarray(ints.T))  # (p1-p0, nao, nao)
        w[p0:p1] = np.einsum("pmn,mi,na->pia", block, occ, vir, optimize=True).reshape(p1 - p0, -1)
    return w


def screened_ov_metric(w: np.ndarray, gaps: np.ndarray, coulomb_metric: np.ndarray) -> np.ndarray:
    """Rᵀ M R with M = ``w @ w.T`` and R = 1 + 4 J⁻¹ ``w`` E⁻¹ ``w.T`` (module docstring); (naux, naux), Hartree².

    Parameters
    ----------
    w : ndarray (naux, nocc·nvir)
        (P|ia) of :func:`ov_three_center`.
    gaps : ndarray (nocc, nvir)
        ε_a − ε_i (Hartree), positive.
    coulomb_metric : ndarray (naux, naux)
        J = (P|Q).
    """
    import scipy.linalg

    metric = w @ w.T
    response = (w / gaps.reshape(1, -1)) @ w.T
    r = np.eye(len(metric)) + 4.0 * scipy.linalg.solve(coulomb_metric, response, assume_a="pos")
    return r.T @ metric @ r


def gradient_metric(numbers, positions, coeffs, auxbasis: str, basis: str = DEFAULT_ORBITAL_BASIS,
                    xc: str = "pbe", grids_level: int = 1, screened: bool = False, charge: int = 0) -> np.ndarray:
    """Occupied-virtual Coulomb-response metric M (or the screened Rᵀ M R) of one closed-shell structure.

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
    screened : bool
        Return Rᵀ M R: Δcᵀ Rᵀ M R Δc is the squared first-order orbital gradient of the guess (module docstring).
    charge : int
        Net charge (e); the structure must be closed-shell with it. The basis's def2 ECPs are applied.

    Returns
    -------
    ndarray (naux, naux) float64
        Hartree²; Δcᵀ M Δc is the squared Frobenius norm of the occupied-virtual block of ΔJ.
    """
    from pyscf import gto
    from pyscf.data.elements import ELEMENTS

    from scfguess.density.auxbasis import coulomb_metric, make_auxmol
    from scfguess.structures import default_ecp

    symbols = [ELEMENTS[int(z)] for z in numbers]
    mol = gto.M(atom=list(zip(symbols, np.asarray(positions, dtype=float).tolist())), unit="Angstrom",
                basis=basis, ecp=default_ecp(basis, symbols), charge=int(charge),
                spin=(int(np.sum(numbers)) - int(charge)) % 2, verbose=0)
    auxmol = make_auxmol(mol, auxbasis)
    occ, vir, gaps = label_orbitals_and_gaps(mol, auxmol, coeffs, xc, grids_level)
    w = ov_three_center(mol, auxmol, occ, vir)
    return screened_ov_metric(w, gaps, coulomb_metric(auxmol)) if screened else w @ w.T
