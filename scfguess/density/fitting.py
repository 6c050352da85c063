"""Coulomb-metric density fitting and the Coulomb matrix of a fitted density.

Both need the three-centre integrals (μν|P). The fit generates them in blocks of
auxiliary shells so that no more than ``max_memory`` MB of them exist at once;
the full (nao, nao, naux) tensor is never built. The Coulomb matrix of a fitted
density is contracted inside PySCF's integral loop instead (the second pass of its
direct RI-J, with Schwarz and coefficient screening): no integral block is stored.
"""

import numpy as np
import scipy.linalg
from pyscf import gto, lib
from pyscf.df import incore

from scfguess.density.auxbasis import DEFAULT_AUXBASIS, coulomb_metric, make_auxmol

#: Default budget (MB) for one block of three-centre integrals.
DEFAULT_BLOCK_MEMORY = 500


def int3c_blocks(mol, auxmol, max_memory=DEFAULT_BLOCK_MEMORY):
    """Iterate over blocks of three-centre integrals (μν|P).

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Orbital molecule, spherical or Cartesian.
    auxmol : pyscf.gto.Mole
        Spherical auxiliary molecule (see :func:`scfguess.density.auxbasis.make_auxmol`).
    max_memory : float
        Budget in MB for one block.

    Yields
    ------
    p0, p1 : int
        Range of auxiliary functions covered by the block.
    ints : ndarray (nao*(nao+1)//2, p1-p0)
        Lower-triangle-packed (μν|P), P in spherical auxiliary order.
    """
    nao = mol.nao
    npair = nao * (nao + 1) // 2
    if mol.cart:
        # libcint cannot mix Cartesian orbitals with spherical auxiliary functions:
        # integrate over Cartesian auxiliary functions and transform their index.
        intmol = auxmol.copy()
        intmol.cart = True
        intmol.build(False, False)
        cart2sph = intmol.cart2sph_coeff()
    else:
        intmol, cart2sph = auxmol, None
    int_loc = intmol.ao_loc_nr()
    sph_loc = auxmol.ao_loc_nr()
    max_cols = max(1, int(max_memory * 1e6 / 8 / npair))
    sh0 = 0
    while sh0 < auxmol.nbas:
        sh1 = sh0 + 1
        while sh1 < auxmol.nbas and int_loc[sh1 + 1] - int_loc[sh0] <= max_cols:
            sh1 += 1
        ints = incore.aux_e2(mol, intmol, "int3c2e", aosym="s2ij",
                             shls_slice=(0, mol.nbas, 0, mol.nbas, sh0, sh1))
        ints = ints.reshape(npair, -1)
        if cart2sph is not None:
            block = cart2sph[int_loc[sh0]:int_loc[sh1], sph_loc[sh0]:sph_loc[sh1]]
            ints = ints @ block
        yield sph_loc[sh0], sph_loc[sh1], ints
        sh0 = sh1


def _pack_density(mol, dm):
    """Total density matrix packed so that ints.T @ packed = Σ_μν (μν|P) D_μν."""
    dm = np.asarray(dm, dtype=float)
    nao = mol.nao
    if dm.shape == (2, nao, nao):
        dm = dm[0] + dm[1]
    if dm.shape != (nao, nao):
        raise ValueError(f"density matrix has shape {dm.shape}; expected ({nao}, {nao}) or (2, {nao}, {nao})")
    if not np.all(np.isfinite(dm)):
        raise ValueError("density matrix contains NaN or infinite values")
    dm = 0.5 * (dm + dm.T)
    packed = lib.pack_tril(dm * 2.0)
    diag = np.arange(nao)
    packed[diag * (diag + 3) // 2] *= 0.5  # diagonal once, off-diagonal twice
    return packed


def solve_metric(metric, rhs):
    """Solve J x = rhs for the Coulomb metric J (Cholesky; eigen-decomposition if J is near-singular)."""
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(metric, lower=True), rhs)
    except scipy.linalg.LinAlgError:
        w, v = scipy.linalg.eigh(metric)
        keep = w > 1e-10 * w[-1]
        scale = w[keep] if np.ndim(rhs) == 1 else w[keep][:, None]
        return v[:, keep] @ ((v[:, keep].T @ rhs) / scale)


def fit_density(mol, dm, auxbasis=DEFAULT_AUXBASIS, max_memory=DEFAULT_BLOCK_MEMORY):
    """Fit a density matrix with auxiliary functions in the Coulomb metric.

    c = (P|Q)⁻¹ (Q|μν) D_μν minimises the Coulomb self-energy of the error
    ρ − Σ_P c_P χ_P.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Orbital molecule (spherical or Cartesian basis).
    dm : ndarray (nao, nao) or (2, nao, nao)
        Density matrix; for spin-resolved input the total density is fitted.
    auxbasis : str or dict
        Auxiliary basis (a PySCF name, or a dict such as ``pyscf.df.aug_etb(mol)``).
    max_memory : float
        Budget in MB for one block of three-centre integrals.

    Returns
    -------
    ndarray (naux,)
        Coefficients in PySCF's spherical auxiliary AO order.

    Examples
    --------
    >>> mol = pyscf.M(atom="O 0 0 0; H 0 0 0.96; H 0.93 0 -0.24", basis="def2-svp")
    >>> coeffs = fit_density(mol, pyscf.scf.RHF(mol).get_init_guess())
    """
    auxmol = make_auxmol(mol, auxbasis)
    packed = _pack_density(mol, dm)
    rhs = np.empty(auxmol.nao)
    for p0, p1, ints in int3c_blocks(mol, auxmol, max_memory):
        rhs[p0:p1] = ints.T @ packed
    return solve_metric(coulomb_metric(auxmol), rhs)


#: Default screening threshold of the direct Coulomb matrix (Hartree): exact for labels and metrics, and above
#: PySCF's SCF default 1e-13, which spends a third more time on integrals that change J by less than this.
COULOMB_SCREENING = 1e-10


def coulomb_matrix(mol, auxmol, coeffs, max_memory=DEFAULT_BLOCK_MEMORY, screening=COULOMB_SCREENING):
    """Coulomb matrix of a fitted density, J_μν = Σ_P (μν|P) c_P.

    Parameters
    ----------
    mol, auxmol : pyscf.gto.Mole
        Orbital and auxiliary molecules.
    coeffs : ndarray (naux,)
        Density coefficients in auxiliary AO order.
    screening : float
        Hartree; integrals whose Schwarz bound times the largest |c_P| of their aux shell is below it are skipped
        (spherical orbital bases; Cartesian ones take every integral).

    Returns
    -------
    ndarray (nao, nao)
        Hartree.
    """
    if not mol.cart:  # PySCF's direct loop cannot mix Cartesian orbitals with spherical aux functions
        return _screened_coulomb_matrix(mol, auxmol, np.asarray(coeffs, dtype=np.float64), screening)
    packed = np.zeros(mol.nao * (mol.nao + 1) // 2)
    for p0, p1, ints in int3c_blocks(mol, auxmol, max_memory):
        packed += ints @ coeffs[p0:p1]
    return lib.unpack_tril(packed)


def _screened_coulomb_matrix(mol, auxmol, coeffs, screening):
    """J_μν = Σ_P (μν|P) c_P in PySCF's direct integral loop (the second pass of its direct RI-J,
    ``pyscf.df.df_jk.get_j``), screened by Schwarz bounds times the largest |c_P| of each aux shell."""
    from pyscf.scf import _vhf, jk

    opt = _vhf._VHFOpt(mol, "int3c2e", "CVHFnr3c2e_schwarz_cond", dmcondname="CVHFnr_dm_cond",
                       direct_scf_tol=screening)
    opt.init_cvhf_direct(mol, "int2e", "CVHFnr_int2e_q_cond")
    aux_loc = auxmol.ao_loc_nr()
    shells = list(zip(aux_loc[:-1], aux_loc[1:]))
    diagonal = np.sqrt(np.abs(auxmol.intor("int2c2e", hermi=1).diagonal()))
    opt.q_cond = np.hstack((opt.q_cond.ravel(), [diagonal[p0:p1].max() for p0, p1 in shells]))
    joint = mol + auxmol
    placeholder = np.array([[0, 0, 1, 1, 0, 0, 0, 0]], dtype=np.int32)  # stands for the fourth index
    joint._bas = np.vstack((joint._bas, placeholder))
    nbas, nbas_joint = mol.nbas, mol.nbas + auxmol.nbas
    rho = coeffs[None, None, :]
    with lib.temporary_env(opt, prescreen="CVHFnr3c2e_vj_pass2_prescreen", _dmcondname=None):
        opt.dm_cond = np.array([np.abs(coeffs[p0:p1]).max() for p0, p1 in shells])
        vj = jk.get_jk(joint, rho, ["ijkl,lk->ij"], "int3c2e", aosym="s2ij", hermi=1, vhfopt=opt,
                       shls_slice=(0, nbas, 0, nbas, nbas, nbas_joint, nbas_joint, nbas_joint + 1))
    return np.asarray(vj).reshape(mol.nao, mol.nao)


def coulomb_matrix_from_cderi(with_df, auxmol, coeffs):
    """Coulomb matrix of a fitted density from a built PySCF DF tensor.

    PySCF stores B = L⁻¹(P|μν) with (P|Q) = L Lᵀ (Cholesky) or, for a near-singular
    metric, B = W^-½ Vᵀ (P|μν) from its eigen-decomposition; then
    J = Bᵀ (Lᵀ c). ``with_df`` must have been built on ``auxmol``'s basis.

    Returns
    -------
    ndarray (nao, nao)
    """
    metric = coulomb_metric(auxmol)
    try:
        low = scipy.linalg.cholesky(metric, lower=True)
        projected = low.T @ coeffs
    except scipy.linalg.LinAlgError:
        w, v = scipy.linalg.eigh(metric)
        keep = w > incore.LINEAR_DEP_THR
        projected = np.sqrt(w[keep]) * (v[:, keep].T @ coeffs)
    packed = None
    q0 = 0
    for cderi in with_df.loop():
        q1 = q0 + cderi.shape[0]
        block = projected[q0:q1] @ cderi
        packed = block if packed is None else packed + block
        q0 = q1
    if q0 != projected.size:
        raise ValueError("the density-fitting tensor does not match the auxiliary basis")
    return lib.unpack_tril(packed)


def same_auxbasis(auxmol_a, auxmol_b):
    """True if two auxiliary molecules carry identical basis functions on identical atoms."""
    return (auxmol_a.nao == auxmol_b.nao and auxmol_a.nbas == auxmol_b.nbas
            and np.array_equal(auxmol_a._bas[:, :4], auxmol_b._bas[:, :4])
            and np.allclose(auxmol_a.atom_coords(), auxmol_b.atom_coords())
            and np.array_equal(auxmol_a._env[auxmol_a._bas[:, gto.PTR_EXP]],
                               auxmol_b._env[auxmol_b._bas[:, gto.PTR_EXP]]))
