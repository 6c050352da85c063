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

**Open shells.** A doublet's orbitals are the α and β eigenvectors of the label's spin-polarised Fock matrices
(V_xc from ρ_α,β = (ρ ± m)/2 of the fitted total and spin densities, as the converter builds them). Δc moves J of
both channels alike, so M = ½ Σ_σ W_σ W_σᵀ (the mean of the two blocks: a closed shell computed as two equal
channels gives its closed-shell M), and the rotated density of each channel adds half the closed-shell response:
R = 1 + 2 J⁻¹ Σ_σ W_σᵀ E_σ⁻¹ W_σ. :func:`channel_metric` writes both cases as one formula.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DEFAULT_ORBITAL_BASIS = "def2-svp"


def label_orbitals(mol, auxmol, coeffs, xc: str = "pbe", grids_level: int = 1):
    """Occupied and virtual orbitals of a closed shell's one :func:`label_channels` channel;
    (nao, nocc), (nao, nvir)."""
    (channel,) = label_channels(mol, auxmol, coeffs, xc, grids_level)
    return channel.occ, channel.vir


class Channel(NamedTuple):
    """One spin channel of a label's orbitals.

    Attributes
    ----------
    occ, vir : ndarray (nao, nocc), (nao, nvir)
        Orbital coefficients, orthonormal in the overlap metric.
    gaps : ndarray (nocc, nvir)
        ε_a − ε_i, Hartree.
    electrons_per_orbital : int
        2 for the one channel of a closed shell, 1 for each of the α and β channels of an open shell.
    """

    occ: np.ndarray
    vir: np.ndarray
    gaps: np.ndarray
    electrons_per_orbital: int


def label_channels(mol, auxmol, coeffs, xc: str = "pbe", grids_level: int = 1, spin_coeffs=None) -> list[Channel]:
    """Orbitals of the Fock matrix of a fitted density: h + J[c] + V_xc[ρ_c] (one channel, closed shell) or, with
    a spin density m, h + J[c] + V_xc^σ[ρ_α, ρ_β] with ρ_α,β = (ρ ± m)/2 (α and β channels, the converter's
    spin-polarised construction).

    Parameters
    ----------
    mol, auxmol : pyscf.gto.Mole
        Orbital and auxiliary molecules; ``mol.nelec`` gives each channel's occupied count.
    coeffs : array (naux,)
        Total-density coefficients, PySCF aux order.
    xc : str
        Functional of V_xc.
    grids_level : int
        DFT grid level for V_xc.
    spin_coeffs : array (naux,), optional
        Spin-density coefficients; required for an open shell (2S = ``mol.spin`` > 0).

    Returns
    -------
    list of Channel
        One (closed shell) or two (α, β).
    """
    import scipy.linalg
    from pyscf import dft

    from scfguess.density.converter import density_fock

    if spin_coeffs is None and mol.spin:
        raise ValueError(f"an open-shell structure (2S = {mol.spin}) needs its spin-density coefficients for the "
                         f"gradient metric.")
    c = np.asarray(coeffs, dtype=np.float64)
    if c.shape != (auxmol.nao,):
        raise ValueError(f"{c.shape[0]} coefficients for {auxmol.nao} auxiliary functions.")
    if spin_coeffs is None:
        mf = dft.RKS(mol, xc=xc)
        fock, _, _ = density_fock(mf, auxmol, c, grids_level)  # the converter's construction
        focks, occupied, per_orbital = [fock], [mol.nelectron // 2], 2
    else:
        m = np.asarray(spin_coeffs, dtype=np.float64)
        if m.shape != c.shape:
            raise ValueError(f"{m.shape[0]} spin-density coefficients for {auxmol.nao} auxiliary functions.")
        mf = dft.UKS(mol, xc=xc)
        focks, _, _ = density_fock(mf, auxmol, c, grids_level, spin_coeffs=m)
        occupied, per_orbital = list(mol.nelec), 1
    s1e = mf.get_ovlp()
    channels = []
    for fock, nocc in zip(focks, occupied):
        energies, mo = scipy.linalg.eigh(fock, s1e)
        channels.append(Channel(mo[:, :nocc], mo[:, nocc:], energies[nocc:][None, :] - energies[:nocc][:, None],
                                per_orbital))
    return channels


def ov_three_center(mol, auxmol, occ, vir) -> np.ndarray:
    """(P|ia) for the given orbitals; (naux, nocc·nvir), Hartree per unit coefficient. ``w @ w.T`` is M."""
    from pyscf import lib

    from scfguess.density.fitting import int3c_blocks

    w = np.empty((auxmol.nao, occ.shape[1] * vir.shape[1]))
    for p0, p1, ints in int3c_blocks(mol, auxmol):
        block = lib.unpack_tril(np.ascontiguousarray(ints.T))  # (p1-p0, nao, nao)
        w[p0:p1] = np.einsum("pmn,mi,na->pia", block, occ, vir, optimize=True).reshape(p1 - p0, -1)
    return w


def channel_metric(ws: list, channels: list, coulomb_metric=None) -> np.ndarray:
    """M = ½ Σ_σ n_σ W_σ W_σᵀ, or with ``coulomb_metric`` the screened Rᵀ M R with
    R = 1 + 2 J⁻¹ Σ_σ n_σ W_σᵀ E_σ⁻¹ W_σ (n_σ electrons per orbital: 2 for a closed shell's one channel, 1 for
    each of an open shell's α and β); (naux, naux), Hartree².

    A density error Δc moves the Coulomb matrix of both spin channels alike, so an open shell's squared orbital
    gradient is the sum of its α and β blocks; the ½ puts it on the closed-shell scale (a closed shell computed as
    two equal channels gives the closed-shell metric), and the response term counts each channel's electrons.

    Parameters
    ----------
    ws : list of ndarray (naux, nocc_σ·nvir_σ)
        (P|ia) of each channel (:func:`ov_three_center`).
    channels : list of Channel
        The channels' gaps and electrons per orbital (:func:`label_channels`).
    coulomb_metric : ndarray (naux, naux), optional
        J = (P|Q); screened metric when given.
    """
    import scipy.linalg

    metric = sum(0.5 * ch.electrons_per_orbital * (w @ w.T) for w, ch in zip(ws, channels))
    if coulomb_metric is None:
        return metric
    response = sum(ch.electrons_per_orbital * (w / ch.gaps.reshape(1, -1)) @ w.T for w, ch in zip(ws, channels))
    r = np.eye(len(metric)) + 2.0 * scipy.linalg.solve(coulomb_metric, response, assume_a="pos")
    return r.T @ metric @ r


def gradient_metric(numbers, positions, coeffs, auxbasis: str, basis: str = DEFAULT_ORBITAL_BASIS,
                    xc: str = "pbe", grids_level: int = 1, screened: bool = False, charge: int = 0,
                    spin: int | None = None, spin_coeffs=None) -> np.ndarray:
    """Occupied-virtual Coulomb-response metric M (or the screened Rᵀ M R) of one structure, closed or open shell
    (:func:`channel_metric`).

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
        Net charge (e). The basis's def2 ECPs are applied.
    spin : int, optional
        2S; default 0, or 1 for an odd electron count.
    spin_coeffs : array (naux,), optional
        The reference spin density (PySCF aux order); required for 2S > 0, whose orbitals are the UKS α and β ones.

    Returns
    -------
    ndarray (naux, naux) float64
        Hartree²; Δcᵀ M Δc is the squared Frobenius norm of the occupied-virtual block of ΔJ (for an open shell,
        the mean over the α and β blocks).
    """
    from pyscf import gto
    from pyscf.data.elements import ELEMENTS

    from scfguess.density.auxbasis import coulomb_metric, make_auxmol
    from scfguess.structures import default_ecp

    symbols = [ELEMENTS[int(z)] for z in numbers]
    parity = (int(np.sum(numbers)) - int(charge)) % 2
    two_s = parity if spin is None else int(spin)
    if two_s % 2 != parity:
        raise ValueError(f"2S = {two_s} does not fit {int(np.sum(numbers)) - int(charge)} electrons.")
    mol = gto.M(atom=list(zip(symbols, np.asarray(positions, dtype=float).tolist())), unit="Angstrom",
                basis=basis, ecp=default_ecp(basis, symbols), charge=int(charge), spin=two_s, verbose=0)
    auxmol = make_auxmol(mol, auxbasis)
    channels = label_channels(mol, auxmol, coeffs, xc, grids_level, spin_coeffs if two_s else None)
    ws = [ov_three_center(mol, auxmol, ch.occ, ch.vir) for ch in channels]
    return channel_metric(ws, channels, coulomb_metric(auxmol) if screened else None)
