"""From a density in an auxiliary basis to a density-matrix guess for a PySCF SCF object.

The Fock matrix of the fitted density ρ_c = Σ_P c_P χ_P is

    F = h + J[c] + V_xc[ρ_c]  (− a K[D_x] for functionals with exact exchange),

built in the orbital basis of ``mf`` and diagonalised with ``mf``'s own ``eig``,
``get_occ`` and ``make_rdm1``, so charge, spin and RKS/UKS/ROKS follow ``mf``.

Exact exchange cannot be built from a density, only from a density matrix D_x
(``exchange=``):

``"sad"``
    D_x is PySCF's minao (superposition of atomic densities) guess.
``"diag"`` or ``"diag:N"``
    D_x is the density matrix from diagonalising F without exchange; with N > 1 the
    exchange is refined N times, each time from the previous diagonalisation (N K builds,
    with h + J + V_xc of the density held fixed).
``"pbe"`` or ``"pbe:N"``
    N (default 3) PBE iterations with RI-J from the density's Fock matrix; their density
    matrix is the guess (it carries the exchange information a density cannot).
``"gga"``
    no exact exchange: its fraction a of a global hybrid is replaced by Becke-88 exchange of
    the density in V_xc (no K build; range-separated hybrids are refused).
``"none"``
    no exchange term.
``"auto"``
    the default, chosen by measurement (docs/how-it-works.md, Hybrids).

Notes
-----
- Open shells: given a spin density m (``spin_coeffs``), V_xc is spin-polarised with
  ρ_α,β = (ρ ± m)/2, each clamped; without one, ρ_α = ρ_β = ρ/2 and both spin Fock
  matrices are equal up to exchange.
- Meta-GGAs: τ is replaced by the von Weizsäcker form (see :mod:`scfguess.density`).
- The VV10 non-local correlation of functionals such as ωB97X-V is left out of the guess.
- Clamping: where the fitted density is below ``scfguess.density.DENSITY_FLOOR`` (it goes
  slightly negative in tails) it is treated as vacuum.
- ``mf``'s settings are never changed. When ``mf`` density-fits with the same auxiliary
  basis, its DF tensor is built exactly as the first SCF cycle would build it, so the SCF
  reuses it; that work counts as guess time. V_xc of the guess uses a coarse private grid
  by default (``grids_level``); ``grids_level=None`` uses a grid with ``mf.grids``' settings.
"""

import copy
import time
from dataclasses import dataclass, field

import numpy as np
from pyscf import dft, lib
from pyscf.dft import numint
from pyscf.scf import hf

from scfguess.density.auxbasis import DEFAULT_AUXBASIS, coulomb_metric, make_auxmol
from scfguess.density.electrons import (density_on_points, electron_count, project_electron_count,
                                        spin_densities_on_points)
from scfguess.density.fitting import coulomb_matrix, coulomb_matrix_from_cderi, same_auxbasis
from scfguess.density.grids import ScreenedBeckeGrids
from scfguess.scf import spin_layout

EXCHANGE_CHOICES = ("auto", "sad", "diag", "pbe", "gga", "none")
#: The ``exchange="auto"`` choice for functionals with exact exchange (docs/how-it-works.md).
AUTO_EXCHANGE = "diag:2"
#: Screening threshold (Hartree) of the guess's J: at 132 atoms J moves by 3e-6 Ha at most, 100x below the level-1
#: grid's V_xc error, and took 11.7 s instead of 16.6 s at 1e-10 (benchmarks/converter-profile/).
GUESS_COULOMB_SCREENING = 1e-7

#: Grid level for V_xc of the guess (None: the SCF's own grid); see ``_converter_grids``.
DEFAULT_GRIDS_LEVEL = 1
#: MB for one block of orbital values on the grid (auxiliary values are chunked separately); larger blocks only
#: add memory traffic.
XC_BLOCK_MEMORY = 50
#: ``fix_charge="auto"`` projects when the count is off by more than this (electrons).
CHARGE_TOLERANCE = 1e-4


@dataclass
class Conversion:
    """A converted guess and what it cost.

    Attributes
    ----------
    dm : ndarray
        What ``mf.make_rdm1()`` returns for the SCF object: (nao, nao) or (2, nao, nao).
    seconds : float
        Wall time of the whole conversion.
    fock_builds : int
        Coulomb + XC builds hidden in the guess (1, plus any PBE iterations).
    k_builds : int
        Exact-exchange builds hidden in the guess.
    exchange : str
        Exchange treatment used ("none" for functionals without exact exchange).
    nelectron_fitted : float
        Electron count of the coefficients before any charge projection.
    timings : dict
        Seconds per step (``coulomb``, ``xc`` with its ``grid``, ``exchange_and_diagonalise``).
    """

    dm: np.ndarray
    seconds: float
    fock_builds: int
    k_builds: int
    exchange: str
    nelectron_fitted: float
    timings: dict = field(default_factory=dict)


def _check_scf(mf):
    if not isinstance(mf, hf.SCF):
        raise ValueError(f"expected a PySCF SCF object, got {type(mf).__name__}")
    if getattr(mf, "istype", None) and (mf.istype("GHF") or mf.istype("DHF")):
        raise ValueError("generalised and relativistic SCF objects (GHF/GKS/DHF) are not supported")
    if hasattr(mf.mol, "lattice_vectors"):
        raise ValueError("periodic systems (pyscf.pbc) are not supported")


def _check_coeffs(coeffs, auxmol, auxbasis):
    coeffs = np.asarray(coeffs, dtype=float)
    if coeffs.ndim != 1 or coeffs.size != auxmol.nao:
        name = auxbasis if isinstance(auxbasis, str) else "the given auxiliary basis"
        raise ValueError(f"coefficient vector has shape {coeffs.shape}; {name} has {auxmol.nao} "
                         f"functions on this molecule")
    if not np.all(np.isfinite(coeffs)):
        raise ValueError("density coefficients contain NaN or infinite values")
    return coeffs


def hybrid_coefficients(mf):
    """(omega, alpha, hyb) of the exact exchange in ``mf``'s functional; HF gives (0, 0, 1)."""
    if not isinstance(mf, dft.rks.KohnShamDFT):
        return 0.0, 0.0, 1.0
    ni = mf._numint
    if not ni.libxc.is_hybrid_xc(mf.xc):
        return 0.0, 0.0, 0.0
    return ni.rsh_and_hybrid_coeff(mf.xc, spin=mf.mol.spin)


def local_exchange_functional(mf) -> str:
    """``mf.xc`` with its exact-exchange fraction a also given as Becke-88 exchange (for ``exchange="gga"``); V_xc
    skips the exact part. Raises ValueError for a range-separated hybrid."""
    if not isinstance(mf, dft.rks.KohnShamDFT):
        raise ValueError("exchange='gga' needs a Kohn-Sham hybrid functional; Hartree-Fock has no V_xc to carry it.")
    omega, _, hyb = hybrid_coefficients(mf)
    if omega != 0:
        raise ValueError(f"exchange='gga' needs a global hybrid; {mf.xc} is range-separated: use 'diag' or 'sad'.")
    exchange, comma, correlation = mf.xc.partition(",")
    return f"{exchange} + {hyb!r}*B88{comma}{correlation}"


def exchange_matrix(mf, dm_x):
    """Scaled exact-exchange matrix a·K[D_x] of ``mf``'s functional (same layout as ``dm_x``).

    Mirrors PySCF's KS ``get_veff``: full-range K times ``hyb``, plus long-range K times
    ``alpha − hyb`` for range-separated hybrids.
    """
    omega, alpha, hyb = hybrid_coefficients(mf)
    mol = mf.mol
    if omega == 0:
        return mf.get_k(mol, dm_x) * hyb
    if alpha == 0:
        return mf.get_k(mol, dm_x, omega=-omega) * hyb
    if hyb == 0:
        return mf.get_k(mol, dm_x, omega=omega) * alpha
    return mf.get_k(mol, dm_x) * hyb + mf.get_k(mol, dm_x, omega=omega) * (alpha - hyb)


def xc_potential(ni, mol, grids, xc, density, max_memory=2000, spin=0):
    """Assemble V_xc in the orbital basis from a density given block by block on the grid.

    Parameters
    ----------
    ni : pyscf.dft.numint.NumInt
    mol : pyscf.gto.Mole
    grids : pyscf.dft.gen_grid.Grids
        Built grids (``coords`` and ``weights`` set).
    xc : str
        Functional in PySCF notation.
    density : callable
        ``density(ao, mask, coords, xctype) -> rho`` in PySCF's row layout for ``xctype``: spin-summed for
        ``spin=0``, (2, ...) for the α and β densities for ``spin=1``.
    max_memory : float
        MB for a block of orbital values.
    spin : {0, 1}
        Spin-restricted potential of the total density, or the α and β potentials.

    Returns
    -------
    vxc : ndarray (nao, nao), or (2, nao, nao) for ``spin=1``
        Hartree.
    nelectron : float
        Electrons counted by integrating ρ on the grid.
    """
    xctype = ni._xc_type(xc)
    nao = mol.nao
    vmat = np.zeros((2, nao, nao) if spin else (nao, nao))
    if xctype == "HF":
        return vmat, 0.0
    if xctype not in ("LDA", "GGA", "MGGA"):
        raise ValueError(f"functional {xc!r} of type {xctype} is not supported")
    ao_loc = mol.ao_loc_nr()
    cutoff = grids.cutoff * 1e2
    nbins = numint.NBINS * 2 - int(numint.NBINS * np.log(cutoff) / np.log(grids.cutoff))
    pair_mask = mol.get_overlap_cond() < -np.log(ni.cutoff)
    tau_part = np.zeros_like(vmat)
    nelectron = 0.0
    ao_deriv = 0 if xctype == "LDA" else 1
    # one channel (the total density) or two (α, β), each assembled the same way
    for ao, mask, weight, coords in ni.block_loop(mol, grids, nao, ao_deriv, max_memory=max_memory):
        rho = density(ao, mask, coords, xctype)
        weighted = weight * ni.eval_xc_eff(xc, rho, deriv=1, xctype=xctype, spin=spin)[1]
        for rho_s, w_s, v_s, t_s in (zip(rho, weighted, vmat, tau_part) if spin else
                                     [(rho, weighted, vmat, tau_part)]):
            if xctype == "LDA":
                nelectron += rho_s @ weight
                numint._dot_ao_ao_sparse(ao, ao, w_s, nbins, mask, pair_mask, ao_loc, 1, v_s)
                continue
            nelectron += rho_s[0] @ weight
            w_s[0] *= 0.5  # the matrix is symmetrised below
            aow = numint._scale_ao_sparse(ao[:4], w_s[:4], mask, ao_loc)
            numint._dot_ao_ao_sparse(ao[0], aow, None, nbins, mask, pair_mask, ao_loc, hermi=0, out=v_s)
            if xctype == "MGGA":
                w_s[4] *= 0.5  # τ carries a factor ½
                numint._tau_dot_sparse(ao, ao, w_s[4], nbins, mask, pair_mask, ao_loc, out=t_s)
    if xctype != "LDA":
        vmat = vmat + np.swapaxes(vmat, -1, -2) + tau_part
    return vmat, float(nelectron)


def _converter_grids(mf, level):
    """Integration grid for V_xc of the guess; ``mf.grids`` itself is never touched.

    ``level=None`` uses ``mf.grids`` when already built, else a copy of its settings
    (PySCF prunes the SCF's grid with the initial density matrix, so building it here
    would change the SCF's grid). An integer builds a grid of that level: the guess needs
    V_xc only approximately, and level 1 gave the same SCF cycle counts as level 3 at a
    third of the cost (docs/how-it-works.md). Its Becke partition is screened by distance
    (:class:`~scfguess.density.grids.ScreenedBeckeGrids`): per point, only the atoms within reach.
    """
    if level is None:
        if mf.grids.coords is not None:
            return mf.grids
        grids = copy.copy(mf.grids)
    else:
        grids = ScreenedBeckeGrids(mf.mol)
        grids.level = level
    return grids.build(with_non0tab=True)


def _coulomb(mf, auxmol, coeffs):
    """J[c], reusing ``mf``'s DF tensor when it is built on the same auxiliary basis.

    The guess must not change how the SCF computes J. PySCF builds and keeps the DF tensor only when it also
    needs exact exchange (or ``mol.incore_anyway``); for a pure functional it uses direct RI-J, which is slower
    per cycle than the stored tensor. So an unbuilt tensor is built here only when the SCF would build it itself
    and it fits in memory; otherwise J comes from blocked three-centre integrals and ``mf`` is left untouched.
    """
    with_df = getattr(mf, "with_df", None)
    if with_df is not None and hasattr(with_df, "loop") and hasattr(with_df, "auxbasis"):
        try:
            df_auxmol = make_auxmol(mf.mol, with_df.auxbasis)
        except ValueError:
            df_auxmol = None
        if df_auxmol is not None and same_auxbasis(df_auxmol, auxmol):
            if with_df._cderi is not None:
                return coulomb_matrix_from_cderi(with_df, auxmol, coeffs)
            scf_builds_tensor = any(hybrid_coefficients(mf)) or mf.mol.incore_anyway
            nao = mf.mol.nao
            tensor_mb = nao * (nao + 1) // 2 * auxmol.nao * 8 / 1e6
            if scf_builds_tensor and tensor_mb < 0.9 * (with_df.max_memory - lib.current_memory()[0]):
                with_df.build()
                return coulomb_matrix_from_cderi(with_df, auxmol, coeffs)
    return coulomb_matrix(mf.mol, auxmol, coeffs, screening=GUESS_COULOMB_SCREENING)


def resolve_exchange(exchange):
    """(name, repeats) of an ``exchange=`` choice; ValueError naming the choices for an unknown one."""
    if not isinstance(exchange, str):
        raise ValueError(f"exchange must be a string, one of {EXCHANGE_CHOICES}")
    name, _, count = exchange.partition(":")
    if name not in EXCHANGE_CHOICES or (count and name not in ("pbe", "diag")):
        raise ValueError(f"unknown exchange treatment {exchange!r}; choose from {', '.join(EXCHANGE_CHOICES)}, "
                         "'diag:N' or 'pbe:N'")
    if count and (not count.isdigit() or int(count) < 1):
        raise ValueError(f"'{name}:N' needs a positive integer N, got {exchange!r}")
    if name == "auto":
        return resolve_exchange(AUTO_EXCHANGE)
    return name, (int(count) if count else {"pbe": 3, "diag": 1}.get(name, 0))


def _diagonalise(mf, fock, s1e, layout):
    """Orbitals of a Fock matrix with ``mf``'s own eig/get_occ/make_rdm1."""
    if layout == "uhf" and fock.ndim == 2:
        fock = np.array([fock, fock])
    if layout == "rohf" and fock.ndim == 3:
        fock = 0.5 * (fock[0] + fock[1])
    mo_energy, mo_coeff = mf.eig(fock, s1e)
    mo_occ = mf.get_occ(mo_energy, mo_coeff)
    return mf.make_rdm1(mo_coeff, mo_occ)


def _pbe_iterations(mf, dm0, ncycle, auxbasis, grids):
    """Run ``ncycle`` PBE RI-J iterations from dm0 on mf's molecule; return (dm, fock builds)."""
    layout = spin_layout(mf)
    cls = {"rhf": dft.RKS, "uhf": dft.UKS, "rohf": dft.ROKS}[layout]
    pbe = cls(mf.mol, xc="pbe").density_fit(auxbasis=auxbasis)
    pbe.grids = grids
    pbe.verbose = 0
    pbe.max_cycle = ncycle
    pbe.conv_tol = 1e-9
    pbe.kernel(dm0=dm0)
    return pbe.make_rdm1(), pbe.cycles + 1


def density_fock(mf, auxmol, coeffs, grids_level=DEFAULT_GRIDS_LEVEL, spin_coeffs=None, xc=None):
    """Fock matrix h + J[c] + V_xc[ρ_c] of density coefficients, for ``mf``'s molecule and functional.

    J reuses ``mf``'s DF tensor where that changes nothing about the SCF (see ``_coulomb``); V_xc (Kohn-Sham only)
    is integrated on a grid of ``grids_level`` (None: the SCF's own grid). No exact exchange. With
    ``spin_coeffs`` (the spin density m = ρ_α − ρ_β) V_xc is spin-polarised, from ρ_σ = (ρ ± m)/2. ``xc``
    replaces ``mf.xc`` in V_xc.

    Returns
    -------
    fock : ndarray (nao, nao), or (2, nao, nao) with ``spin_coeffs``
        Hartree.
    grids : pyscf.dft.gen_grid.Grids or None
        The V_xc grid (None for Hartree-Fock).
    timings : dict
        Seconds of the ``coulomb`` and ``xc`` parts (``xc`` includes ``grid``, building the V_xc grid).
    """
    timings = {}
    t0 = time.perf_counter()
    fock = mf.get_hcore() + _coulomb(mf, auxmol, coeffs)
    timings["coulomb"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    grids = None
    if spin_coeffs is not None:
        fock = np.array([fock, fock])
    if isinstance(mf, dft.rks.KohnShamDFT):
        grids = _converter_grids(mf, grids_level)
        timings["grid"] = time.perf_counter() - t0
        if spin_coeffs is None:
            def density(ao, mask, coords, xctype):
                return density_on_points(auxmol, coeffs, coords, xctype)
        else:
            def density(ao, mask, coords, xctype):
                return spin_densities_on_points(auxmol, coeffs, spin_coeffs, coords, xctype)
        vxc, _ = xc_potential(mf._numint, mf.mol, grids, mf.xc if xc is None else xc, density,
                              max_memory=XC_BLOCK_MEMORY,
                              spin=int(spin_coeffs is not None))
        fock = fock + vxc
    timings["xc"] = time.perf_counter() - t0
    return fock, grids, timings


def convert(mf, coeffs, auxbasis=DEFAULT_AUXBASIS, *, exchange="auto", fix_charge="auto",
            grids_level=DEFAULT_GRIDS_LEVEL, spin_coeffs=None):
    """Turn density coefficients into a density-matrix guess for ``mf``; see :func:`density_to_dm`.

    Returns
    -------
    Conversion
        The guess and its cost.
    """
    t_start = time.perf_counter()
    _check_scf(mf)
    exchange_name, repeats = resolve_exchange(exchange)
    if fix_charge not in ("auto", True, False):
        raise ValueError(f"fix_charge must be 'auto', True or False, got {fix_charge!r}")
    mol = mf.mol
    auxmol = make_auxmol(mol, auxbasis)
    coeffs = _check_coeffs(coeffs, auxmol, auxbasis)
    nelectron_fitted = electron_count(auxmol, coeffs)
    off = abs(nelectron_fitted - mol.nelectron)
    if fix_charge is True or (fix_charge == "auto" and off > CHARGE_TOLERANCE):
        coeffs = project_electron_count(auxmol, coeffs, mol.nelectron, coulomb_metric(auxmol))
    layout = spin_layout(mf)
    if spin_coeffs is not None and layout != "rhf":
        spin_coeffs = project_electron_count(auxmol, _check_coeffs(spin_coeffs, auxmol, auxbasis), mol.spin,
                                             coulomb_metric(auxmol))
    else:
        spin_coeffs = None  # a closed shell has no spin density
    hybrid = any(hybrid_coefficients(mf))
    if not hybrid:
        exchange_name = "none"
    xc = local_exchange_functional(mf) if exchange_name == "gga" else None
    fock, grids, timings = density_fock(mf, auxmol, coeffs, grids_level, spin_coeffs, xc)

    s1e = mf.get_ovlp()
    fock_builds, k_builds = 1, 0
    t0 = time.perf_counter()
    if exchange_name == "sad":
        dm_x, refinements = mf.get_init_guess(mol, "minao"), 1
    else:
        dm = dm_x = _diagonalise(mf, fock, s1e, layout)
        refinements = repeats if exchange_name == "diag" else 0
    for _ in range(refinements):
        vk = exchange_matrix(mf, dm_x)
        k_builds += 1
        dm = dm_x = _diagonalise(mf, fock - 0.5 * vk if layout == "rhf" else fock - vk, s1e, layout)
    if exchange_name == "pbe":
        if grids is None:  # Hartree-Fock: no V_xc grid yet
            grids = _converter_grids(mf, DEFAULT_GRIDS_LEVEL)
        dm, builds = _pbe_iterations(mf, dm, repeats, auxbasis, grids)
        fock_builds += builds
    timings["exchange_and_diagonalise"] = time.perf_counter() - t0
    return Conversion(dm=dm, seconds=time.perf_counter() - t_start, fock_builds=fock_builds,
                      k_builds=k_builds, exchange=exchange_name if hybrid else "none",
                      nelectron_fitted=nelectron_fitted, timings=timings)


def density_to_dm(mf, coeffs, auxbasis=DEFAULT_AUXBASIS, *, exchange="auto", fix_charge="auto",
                  grids_level=DEFAULT_GRIDS_LEVEL, spin_coeffs=None):
    """Density-matrix guess for ``mf`` from density coefficients in an auxiliary basis.

    Parameters
    ----------
    mf : pyscf SCF object
        RHF/UHF/ROHF or RKS/UKS/ROKS, with or without density fitting, any orbital basis
        and functional (LDA, GGA, meta-GGA, global and range-separated hybrids).
    coeffs : ndarray (naux,)
        Density coefficients in PySCF's spherical order of ``auxbasis`` on ``mf.mol``.
    auxbasis : str or dict
        Auxiliary basis of ``coeffs``.
    exchange : {"auto", "sad", "diag", "diag:N", "pbe", "pbe:N", "gga", "none"}
        Source of the exact-exchange density matrix for hybrids (module doc).
    fix_charge : {"auto", True, False}
        Project ``coeffs`` to ``mf.mol.nelectron`` electrons; "auto" does so when the
        count is off by more than :data:`CHARGE_TOLERANCE`.
    grids_level : int or None
        DFT grid level for V_xc of the guess; None uses ``mf.grids``' settings.
    spin_coeffs : ndarray (naux,), optional
        Spin density m = ρ_α − ρ_β in the same basis, for open shells: projected to integrate to 2S, then
        V_xc is built from ρ_σ = (ρ ± m)/2. Without it (and always for closed shells) ρ_α = ρ_β = ρ/2.

    Returns
    -------
    ndarray
        What ``mf.make_rdm1()`` returns: (nao, nao) for restricted closed shells,
        (2, nao, nao) for UKS/ROKS.

    Examples
    --------
    >>> mf = pyscf.dft.RKS(mol, xc="pbe")
    >>> dm0 = density_to_dm(mf, fit_density(mol, dm_converged))
    >>> mf.kernel(dm0=dm0)
    """
    return convert(mf, coeffs, auxbasis, exchange=exchange, fix_charge=fix_charge, grids_level=grids_level,
                   spin_coeffs=spin_coeffs).dm
