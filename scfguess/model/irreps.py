"""Auxiliary-basis shells as e3nn irreps, and the PySCF <-> e3nn real-harmonic change of basis.

PySCF orders the real spherical functions of a shell as m = -l..l, except l = 1, which is (x, y, z). e3nn 0.6
also uses (x, y, z) for l = 1, but builds its l >= 2 harmonics around the y axis, so the two bases differ by an
orthogonal matrix per l, not by a reordering. :func:`change_of_basis` owns that matrix; everything else in the
package goes through it.

Convention: for coefficients of one shell, ``c_e3nn = Q @ c_pyscf`` and ``c_pyscf = Q.T @ c_e3nn`` with
``Q = change_of_basis(l)``. Density coefficients in the e3nn basis transform under a rotation R with e3nn's
``Irrep(l, (-1)**l).D_from_matrix(R)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: The auxiliary basis densities are expressed in unless a model says otherwise.
DEFAULT_AUXBASIS = "def2-universal-jfit"

#: Largest angular momentum the change of basis is derived for (def2-universal-jfit stops at l = 4).
MAX_L = 6


@lru_cache(maxsize=None)
def _pyscf_unit_sphere_values(l: int, points_key: int) -> tuple[np.ndarray, np.ndarray]:
    """PySCF real spherical functions of one shell at fixed random points on the unit sphere.

    Returns
    -------
    points : ndarray, shape (npts, 3)
    values : ndarray, shape (npts, 2l+1), PySCF component order (radial factor constant on the sphere).
    """
    from pyscf import gto

    rng = np.random.default_rng(points_key)
    points = rng.normal(size=(8 * (2 * l + 1) + 16, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    mol = gto.M(atom="He 0 0 0", basis={"He": [[l, [1.0, 1.0]]]}, unit="Bohr", verbose=0)
    values = mol.eval_gto("GTOval_sph", points)
    return points, values


@lru_cache(maxsize=None)
def change_of_basis(l: int) -> np.ndarray:
    """Orthogonal map from PySCF real spherical functions to e3nn real spherical harmonics for one l.

    Derived numerically once per l (least-squares fit of PySCF shell values against
    ``e3nn.o3.spherical_harmonics`` at random points on the unit sphere) and cached.

    Parameters
    ----------
    l : int
        Angular momentum, 0 <= l <= MAX_L.

    Returns
    -------
    ndarray, shape (2l+1, 2l+1), float64
        Q with ``c_e3nn = Q @ c_pyscf``; Q is orthogonal (Q.T @ Q = I to ~1e-13). Read-only.
    """
    import torch
    from e3nn import o3

    if not 0 <= l <= MAX_L:
        raise ValueError(f"angular momentum l={l} is outside 0..{MAX_L}.")
    points, values = _pyscf_unit_sphere_values(l, 1234 + l)
    y_e3nn = o3.spherical_harmonics(l, torch.from_numpy(points), normalize=True).numpy()
    # values = y_e3nn @ A  (A maps e3nn components to PySCF components up to one positive scale)
    a, *_ = np.linalg.lstsq(y_e3nn, values, rcond=None)
    scale = np.sqrt(np.mean(np.sum(a * a, axis=0)))
    q = a / scale  # chi_pyscf = s * Y_e3nn @ q  =>  rho = s * Y_e3nn . (q @ c_pyscf)
    residual = np.abs(y_e3nn @ a - values).max()
    deviation = np.abs(q.T @ q - np.eye(2 * l + 1)).max()
    if residual > 1e-10 * max(1.0, np.abs(values).max()) or deviation > 1e-10:
        raise RuntimeError(f"PySCF/e3nn change of basis for l={l} is not orthogonal (residual {residual:.1e}).")
    q = np.where(np.abs(q) < 1e-14, 0.0, q)
    q.setflags(write=False)
    return q


def shell_angular_momenta(symbol: str, auxbasis: str | None = None) -> tuple[int, ...]:
    """Angular momentum of every auxiliary function block of an element, in PySCF AO order.

    A shell with several contracted functions contributes one entry per contraction.

    Parameters
    ----------
    symbol : str
        Element symbol, e.g. ``"C"``.
    auxbasis : str, optional
        Auxiliary basis name; default :data:`DEFAULT_AUXBASIS`.

    Returns
    -------
    tuple of int
        e.g. H in def2-universal-jfit: (0, 0, 0, 1, 2) — 3s1p1d, 11 functions.
    """
    return _shell_angular_momenta(symbol, auxbasis or DEFAULT_AUXBASIS)


@lru_cache(maxsize=None)
def _shell_angular_momenta(symbol: str, auxbasis: str) -> tuple[int, ...]:
    from pyscf import gto

    from scfguess.errors import UnsupportedElementError

    try:
        basis = gto.basis.load(auxbasis, symbol)
    except (KeyError, RuntimeError):  # PySCF's BasisNotFoundError is a RuntimeError
        basis = None
    if not basis:
        raise UnsupportedElementError([symbol], what=f"auxiliary basis {auxbasis}")
    charge = gto.charge(symbol)
    mol = gto.M(atom=[[symbol, (0.0, 0.0, 0.0)]], basis={symbol: basis}, spin=charge % 2, verbose=0)
    ls: list[int] = []
    for shell in range(mol.nbas):
        ls.extend([mol.bas_angular(shell)] * mol.bas_nctr(shell))
    return tuple(ls)


def element_irreps(symbol: str, auxbasis: str | None = None):
    """e3nn irreps of an element's auxiliary functions, in PySCF AO order, parity (-1)**l.

    Consecutive shells of equal l are merged (e.g. C: ``6x0e+4x1o+3x2e+1x3o+1x4e``); never sorted, so the
    e3nn feature layout (copy-major) matches PySCF's shell-major AO order block by block.

    Returns
    -------
    e3nn.o3.Irreps
    """
    from e3nn import o3

    items: list[tuple[int, tuple[int, int]]] = []
    for l in shell_angular_momenta(symbol, auxbasis):
        irrep = (l, (-1) ** l)
        if items and items[-1][1] == irrep:
            items[-1] = (items[-1][0] + 1, irrep)
        else:
            items.append((1, irrep))
    return o3.Irreps(items)


def element_nao(symbol: str, auxbasis: str | None = None) -> int:
    """Number of auxiliary functions of an element (H 11, C/N/O/F 49, P/S/Cl 51 for def2-universal-jfit)."""
    return sum(2 * l + 1 for l in shell_angular_momenta(symbol, auxbasis))


def pyscf_to_e3nn(ls) -> np.ndarray:
    """Block-diagonal orthogonal matrix mapping one atom's coefficients from PySCF order to e3nn order.

    Parameters
    ----------
    ls : sequence of int
        Angular momenta of the atom's function blocks, as from :func:`shell_angular_momenta`.

    Returns
    -------
    ndarray, shape (nfunc, nfunc), float64
        M with ``c_e3nn = M @ c_pyscf`` (and ``c_pyscf = M.T @ c_e3nn``).
    """
    n = sum(2 * l + 1 for l in ls)
    m = np.zeros((n, n))
    start = 0
    for l in ls:
        d = 2 * l + 1
        m[start : start + d, start : start + d] = change_of_basis(l)
        start += d
    return m


def pyscf_rotation(ls, rotation: np.ndarray) -> np.ndarray:
    """How one atom's PySCF-order coefficients transform under an orthogonal 3x3 matrix (rotation or reflection).

    Parameters
    ----------
    ls : sequence of int
        Angular momenta of the function blocks.
    rotation : ndarray, shape (3, 3)
        Orthogonal matrix acting on Cartesian positions as ``r' = rotation @ r``.

    Returns
    -------
    ndarray, shape (nfunc, nfunc), float64
        D with ``c_pyscf(rotated density) = D @ c_pyscf``.
    """
    import torch
    from e3nn import o3

    r = torch.as_tensor(np.asarray(rotation, dtype=np.float64))
    blocks = []
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its SO(3) generators in the default dtype
    try:
        for l in ls:
            d_e3nn = o3.Irrep(l, (-1) ** l).D_from_matrix(r).numpy()
            q = change_of_basis(l)
            blocks.append(q.T @ d_e3nn @ q)
    finally:
        torch.set_default_dtype(previous)
    n = sum(b.shape[0] for b in blocks)
    out = np.zeros((n, n))
    start = 0
    for b in blocks:
        out[start : start + b.shape[0], start : start + b.shape[0]] = b
        start += b.shape[0]
    return out
