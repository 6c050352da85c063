"""Densities expressed in an auxiliary basis: electron count, charge projection, values on a grid."""

import numpy as np
from pyscf import lib
from pyscf.dft import gen_grid, numint

from scfguess.density.auxbasis import aux_integrals, coulomb_metric
from scfguess.density.fitting import solve_metric

#: Points where the fitted density is below this (a.u.) are treated as vacuum:
#: ρ, ∇ρ and τ are set to zero there, so they add nothing to E_xc or V_xc.
DENSITY_FLOOR = 1e-10

#: MB of auxiliary-function values evaluated at once, per thread: small enough to stay in cache between
#: evaluating and contracting them (larger chunks make the evaluation memory-bound).
AUX_CHUNK_MB = 4.0


def electron_count(auxmol, coeffs):
    """Number of electrons N = Σ_P c_P ∫χ_P of a fitted density (float)."""
    return float(aux_integrals(auxmol) @ np.asarray(coeffs))


def project_electron_count(auxmol, coeffs, nelectron, metric=None):
    """Restore an exact electron count with the smallest change in the Coulomb metric.

    c ← c + J⁻¹q (N − qᵀc) / (qᵀJ⁻¹q), with q_P = ∫χ_P and J = (P|Q).

    Parameters
    ----------
    auxmol : pyscf.gto.Mole
    coeffs : ndarray (naux,)
    nelectron : float
        Target number of electrons.
    metric : ndarray (naux, naux), optional
        Precomputed Coulomb metric.

    Returns
    -------
    ndarray (naux,)
    """
    q = aux_integrals(auxmol)
    return _constrain(auxmol, coeffs, q[:, None], np.array([nelectron], dtype=float), metric)


def _constrain(auxmol, coeffs, constraints, targets, metric=None):
    """c + J⁻¹Q (QᵀJ⁻¹Q)⁻¹ (t − Qᵀc): the smallest Coulomb-metric change with Qᵀc = t. Q (naux, k), t (k,)."""
    if metric is None:
        metric = coulomb_metric(auxmol)
    jinv_q = solve_metric(metric, constraints)
    shift = np.linalg.solve(constraints.T @ jinv_q, targets - constraints.T @ coeffs)
    return coeffs + jinv_q @ shift


def atom_moments(auxmol, coeffs, dipoles: bool = False) -> np.ndarray:
    """Each atom's share of a fitted density by its own auxiliary functions.

    Population p_A = Σ_{P∈A} q_P c_P (a crude partition — a diffuse function on one atom carries density of its
    neighbours — but exact in sum: Σ_A p_A is the electron count); with ``dipoles`` also the atomic dipole
    μ_A = Σ_{P∈A} c_P ∫(r − R_A) χ_P (e·Bohr, electrons counted positive; only p functions contribute).

    Returns
    -------
    ndarray (natm,) populations, or (natm, 4) population, μ_x, μ_y, μ_z with ``dipoles``.
    """
    moments = _moment_columns(auxmol, dipoles).T @ np.asarray(coeffs)
    return moments.reshape(auxmol.natm, 4) if dipoles else moments


def project_atom_moments(auxmol, coeffs, moments, dipoles: bool = False, metric=None):
    """Give each atom the moments ``moments`` (as :func:`atom_moments` returns them) with the smallest change in
    the Coulomb metric.

    c ← c + J⁻¹Q (QᵀJ⁻¹Q)⁻¹ (t − Qᵀc), Q (naux, natm or 4 natm) the moment integrals of each atom's functions:
    the per-atom form of :func:`project_electron_count` (which is the same with a single population column).
    """
    targets = np.asarray(moments, dtype=float).reshape(-1)
    return _constrain(auxmol, coeffs, _moment_columns(auxmol, dipoles), targets, metric)


def _moment_columns(auxmol, dipoles: bool) -> np.ndarray:
    """(naux, natm) integrals q_P in the column of P's atom, or (naux, 4 natm) with the three dipole integrals
    ∫(r − R_A)_x χ_P after each population column.

    A p function of PySCF is Y-normalised: χ_x = √(3/4π) Σ_k c_k x e^{−α_k r²} (p order x, y, z), and
    ∫x² e^{−αr²} = (π/α)^{3/2} / (2α).
    """
    q = aux_integrals(auxmol)
    width = 4 if dipoles else 1
    columns = np.zeros((auxmol.nao, auxmol.natm * width))
    for atom, (_, _, p0, p1) in enumerate(auxmol.offset_nr_by_atom()):
        columns[p0:p1, atom * width] = q[p0:p1]
    if dipoles:
        ao_loc = auxmol.ao_loc_nr()
        for ish in range(auxmol.nbas):
            if auxmol.bas_angular(ish) != 1:
                continue
            exps = auxmol.bas_exp(ish)
            radial = np.einsum("p,pc->c", (np.pi / exps) ** 1.5 / (2 * exps), auxmol._libcint_ctr_coeff(ish))
            atom = auxmol.bas_atom(ish)
            for c, value in enumerate(np.sqrt(3 / (4 * np.pi)) * radial):
                for x in range(3):
                    columns[ao_loc[ish] + 3 * c + x, atom * 4 + 1 + x] = value
    return columns


def density_on_points(auxmol, coeffs, coords, xctype, max_memory=None):
    """Density of the functional's type at points, in PySCF's row layout.

    Parameters
    ----------
    auxmol : pyscf.gto.Mole
    coeffs : ndarray (naux,)
    coords : ndarray (ngrid, 3)
        Bohr.
    xctype : {"LDA", "GGA", "MGGA"}
    max_memory : float, optional
        MB for auxiliary-function values at once (points are taken in chunks); default
        :data:`AUX_CHUNK_MB` per thread.

    Returns
    -------
    ndarray
        LDA: (ngrid,) ρ. GGA: (4, ngrid) ρ, ∂xρ, ∂yρ, ∂zρ. MGGA: (5, ngrid) with the
        kinetic energy density replaced by the von Weizsäcker form
        τ_W = |∇ρ|² / (8ρ) (PySCF's τ carries the factor ½, as τ_W does).
        Points with ρ < :data:`DENSITY_FLOOR` are zeroed in every row (see module doc).
    """
    return _functional_rows(_values(auxmol, [coeffs], coords, xctype, max_memory)[0], xctype)


def spin_densities_on_points(auxmol, coeffs, spin_coeffs, coords, xctype, max_memory=None):
    """α and β densities ρ_σ = (ρ ± m)/2 of a total and a spin density, each clamped, (2, ...) rows.

    Each spin density is treated as :func:`density_on_points` treats the total one (floor, von Weizsäcker τ),
    so a spin density that overshoots the total somewhere leaves that spin empty there instead of negative.

    Parameters
    ----------
    coeffs, spin_coeffs : ndarray (naux,)
        Total density ρ and spin density m = ρ_α − ρ_β.

    Returns
    -------
    ndarray
        (2, ...) with each half as :func:`density_on_points` returns for ``xctype``.
    """
    rho, m = _values(auxmol, [coeffs, spin_coeffs], coords, xctype, max_memory)
    return np.array([_functional_rows(0.5 * (rho + m), xctype), _functional_rows(0.5 * (rho - m), xctype)])


def _values(auxmol, coefficient_sets, coords, xctype, max_memory):
    """Values (and gradients for GGA/MGGA) of densities at points: list of (ncomp, ngrid), ncomp 1 or 4."""
    deriv = 0 if xctype == "LDA" else 1
    ncomp = 1 if deriv == 0 else 4
    if max_memory is None:
        max_memory = AUX_CHUNK_MB * lib.num_threads()
    blocks = int(max_memory * 1e6 / (8 * ncomp * auxmol.nao)) // gen_grid.BLKSIZE
    chunk = max(1, blocks) * gen_grid.BLKSIZE
    out = [np.empty((ncomp, len(coords))) for _ in coefficient_sets]
    for p0 in range(0, len(coords), chunk):
        part = coords[p0:p0 + chunk]
        ao = numint.eval_ao(auxmol, part, deriv=deriv, non0tab=gen_grid.make_mask(auxmol, part))
        for rows, coeffs in zip(out, coefficient_sets):
            rows[:, p0:p0 + chunk] = (ao @ coeffs).reshape(ncomp, -1)
    return out


def _functional_rows(rho, xctype):
    """Clamp (ncomp, ngrid) density rows at :data:`DENSITY_FLOOR` and add the von Weizsäcker τ for MGGA."""
    if xctype == "LDA":
        rho = rho[0]
        rho[rho < DENSITY_FLOOR] = 0.0
        return rho
    vacuum = rho[0] < DENSITY_FLOOR
    rho[:, vacuum] = 0.0
    if xctype == "MGGA":
        tau = np.zeros_like(rho[0])
        dens = ~vacuum
        tau[dens] = np.einsum("xg,xg->g", rho[1:4, dens], rho[1:4, dens]) / (8.0 * rho[0, dens])
        rho = np.vstack([rho, tau])
    return rho
