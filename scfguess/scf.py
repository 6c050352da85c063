"""SCF scaffolding shared by every entry point: settings, the SCF factory, checks, guess names and spin layouts.

The CLI, the ASE calculator, SCFbench and the workflows all build their SCF objects with :func:`make_scf` from
one :class:`ScfSettings`, so a number measured by SCFbench is a number for the path users run. Every setting is
set on the PySCF object explicitly; nothing comes from a PySCF configuration file.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
from pyscf import dft, scf

__all__ = ["PYSCF_GUESSES", "ScfSettings", "make_scf", "build_scf", "check_xc", "spin_layout",
           "match_spin_layout", "scf_like", "check_geometry", "available_memory_mb", "estimate_memory_mb",
           "check_memory"]

#: PySCF's own guess names (``init_guess`` / ``get_init_guess(key=...)``). PySCF silently treats an unknown
#: name as ``minao``, so every entry point validates against this tuple.
PYSCF_GUESSES: tuple[str, ...] = ("minao", "atom", "huckel", "mod_huckel", "sap", "vsap", "1e")

#: Dense (nao, nao) matrices an SCF keeps at once (Fock, density, overlap, core, orbitals, DIIS history).
_DENSE_MATRICES = 30


@dataclass(frozen=True)
class ScfSettings:
    """SCF settings, all applied explicitly by :func:`make_scf` (PySCF's defaults unless said).

    Attributes
    ----------
    density_fit : bool
        Density fitting (RI-J, and RI-K for hybrids) in the SCF.
    auxbasis : str or None
        SCF auxiliary basis; None is PySCF's default for the orbital basis.
    conv_tol : float
        Energy convergence threshold (Hartree).
    conv_tol_grad : float or None
        Orbital-gradient threshold; None is PySCF's rule sqrt(conv_tol).
    max_cycle : int
        Maximum SCF cycles. 50, PySCF's own default, for every entry point: the benchmark then measures what a
        user runs, and an ML-started SCF that does not converge in 50 is retried from minao by the hook.
    grids_level : int
        DFT integration grid level (0-9).
    diis_space : int
        DIIS subspace size.
    diis_start_cycle : int
        First cycle that uses DIIS.
    level_shift : float
        Level shift (Hartree).
    damp : float
        Density damping factor.
    max_memory : int
        PySCF memory limit (MB).
    gpu : bool
        Run the SCF through gpu4pyscf (applied by the caller, see ``scfbench.jobs``).
    """

    density_fit: bool = True
    auxbasis: str | None = None
    conv_tol: float = 1e-9
    conv_tol_grad: float | None = None
    max_cycle: int = 50
    grids_level: int = 3
    diis_space: int = 8
    diis_start_cycle: int = 1
    level_shift: float = 0.0
    damp: float = 0.0
    max_memory: int = 4000
    gpu: bool = False

    def __post_init__(self):
        if not self.conv_tol > 0:
            raise ValueError(f"conv_tol must be positive, got {self.conv_tol}.")
        if self.conv_tol_grad is not None and not self.conv_tol_grad > 0:
            raise ValueError(f"conv_tol_grad must be positive, got {self.conv_tol_grad}.")
        if self.max_cycle < 1:
            raise ValueError(f"max_cycle must be at least 1, got {self.max_cycle}.")
        if not 0 <= self.grids_level <= 9:  # PySCF's radial grid table has levels 0-9; -1 would silently mean 9
            raise ValueError(f"grids level must be between 0 and 9, got {self.grids_level}.")
        if self.diis_space < 1 or self.diis_start_cycle < 0:
            raise ValueError("diis_space must be at least 1 and diis_start_cycle at least 0.")
        if self.max_memory < 100:
            raise ValueError(f"max_memory must be at least 100 MB, got {self.max_memory}.")

    def as_dict(self) -> dict:
        """Plain dict of the settings (JSON-ready)."""
        return asdict(self)


def check_xc(xc: str) -> str:
    """Return ``xc`` if PySCF's libxc interface knows it; raise ``ValueError`` otherwise."""
    if not isinstance(xc, str) or not xc.strip():
        raise ValueError(f"the functional must be a non-empty string, got {xc!r}.")
    try:
        dft.libxc.parse_xc(xc)
    except Exception:  # noqa: BLE001 - libxc raises KeyError, ValueError ... for unknown names
        raise ValueError(f"unknown functional {xc!r} (PySCF/libxc does not know it).") from None
    return xc


def make_scf(mol, xc: str, settings: ScfSettings = ScfSettings()):
    """RKS (closed shell) or UKS (open shell) object for ``mol`` with every setting applied explicitly.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Built molecule; its charge and spin (2S) decide RKS or UKS.
    xc : str
        Functional.
    settings : ScfSettings
        ``settings.gpu`` is not applied here.

    Returns
    -------
    pyscf.dft.rks.RKS or pyscf.dft.uks.UKS
        Not run, ``verbose = 0``, guess not set; density-fitted when ``settings.density_fit``.
    """
    from pyscf.dft import gen_grid, radi

    mf = dft.RKS(mol) if mol.spin == 0 else dft.UKS(mol)
    mf.xc = xc
    mf.verbose = 0
    mf.conv_tol = settings.conv_tol
    mf.conv_tol_grad = settings.conv_tol_grad
    mf.max_cycle = settings.max_cycle
    mf.diis = True
    mf.diis_space = settings.diis_space
    mf.diis_start_cycle = settings.diis_start_cycle
    mf.diis_file = None
    mf.level_shift = settings.level_shift
    mf.damp = settings.damp
    mf.direct_scf = True
    mf.direct_scf_tol = 1e-13
    mf.conv_check = True
    mf.max_memory = settings.max_memory
    mf.chkfile = None
    mf.grids.level = settings.grids_level
    mf.grids.prune = gen_grid.nwchem_prune
    mf.grids.radi_method = radi.treutler_ahlrichs
    mf.grids.becke_scheme = gen_grid.original_becke
    mf.small_rho_cutoff = 1e-7
    if settings.density_fit:
        mf = mf.density_fit(auxbasis=settings.auxbasis)
    return mf


def build_scf(structure, basis="def2-svp", xc="pbe", settings: ScfSettings = ScfSettings(), **mole_kwargs):
    """A checked Kohn-Sham SCF object for a structure (the CLI's and the ASE calculator's factory).

    Parameters
    ----------
    structure : scfguess.structures.Structure
        Positions in Å, charge, spin (2S).
    basis, xc : str
        Orbital basis and functional.
    settings : ScfSettings
    **mole_kwargs
        Passed to :func:`scfguess.structures.to_mole` (e.g. ``cart=True``).

    Returns
    -------
    pyscf SCF object
        From :func:`make_scf`; not run.

    Raises
    ------
    ValueError
        Unknown functional or basis, an element the basis lacks
        (:class:`~scfguess.errors.UnsupportedElementError`), or a molecule whose estimated memory exceeds
        ``settings.max_memory`` or the memory available.
    """
    from scfguess.structures import to_mole

    check_xc(xc)
    limit = min(float(settings.max_memory), available_memory_mb())
    mol = to_mole(structure, basis, max_memory=settings.max_memory, **mole_kwargs)
    check_memory(mol, limit)
    return make_scf(mol, xc, settings)


def spin_layout(mf) -> str:
    """``"uhf"``, ``"rohf"`` or ``"rhf"``: the density-matrix layout ``mf.make_rdm1()`` has."""
    if isinstance(mf, scf.uhf.UHF):
        return "uhf"
    if isinstance(mf, scf.rohf.ROHF):
        return "rohf"
    return "rhf"


def match_spin_layout(dm, mf) -> np.ndarray:
    """Convert a density matrix between restricted (nao, nao) and unrestricted (2, nao, nao) layouts for ``mf``."""
    dm = np.asarray(dm)
    unrestricted = mf.mol.spin != 0 or spin_layout(mf) == "uhf"
    if unrestricted and dm.ndim == 2:
        return np.stack([dm / 2, dm / 2])
    if not unrestricted and dm.ndim == 3:
        return dm[0] + dm[1]
    return dm


def scf_like(mol, like):
    """A bare SCF object of ``like``'s kind (RKS/UKS/ROKS or HF, same functional) for another molecule."""
    layout = spin_layout(like)
    if isinstance(like, dft.rks.KohnShamDFT):
        mf = {"rhf": dft.RKS, "uhf": dft.UKS, "rohf": dft.ROKS}[layout](mol, xc=like.xc)
    else:
        mf = {"rhf": scf.RHF, "uhf": scf.UHF, "rohf": scf.ROHF}[layout](mol)
    mf.verbose = 0
    return mf


def check_geometry(mol) -> None:
    """Raise :class:`~scfguess.errors.GeometryError` (a ValueError) for non-finite coordinates or two atoms at
    (nearly) the same position."""
    from scipy.spatial import cKDTree

    from scfguess.errors import GeometryError
    from scfguess.structures import MIN_DISTANCE

    coords = mol.atom_coords(unit="Angstrom")
    if not np.all(np.isfinite(coords)):
        raise GeometryError("the molecule has NaN or infinite coordinates.")
    if mol.natm > 1:
        pairs = sorted(map(sorted, cKDTree(coords).query_pairs(r=MIN_DISTANCE)))
        if pairs:
            i, j = pairs[0]
            raise GeometryError(f"atoms {i} and {j} of the molecule are at the same position "
                             f"({np.linalg.norm(coords[i] - coords[j]):.3g} Å apart).")


def available_memory_mb() -> float:
    """Physical memory available now, MB (``MemAvailable`` on Linux, else free pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e6


def estimate_memory_mb(mol, auxbasis=None) -> float:
    """Memory a guess plus SCF on ``mol`` needs at least, MB (estimated before any work).

    Counts the dense orbital-basis matrices of an SCF (``30 nao²``) and the two auxiliary-basis matrices of the
    converter (Coulomb metric and its factor, ``2 naux²``), 8 bytes each. Blocked work (grids, DF tensor blocks)
    is bounded by ``mol.max_memory`` and not counted.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    auxbasis : str, optional
        Auxiliary basis of the density; None is :data:`scfguess.density.DEFAULT_AUXBASIS`.
    """
    from scfguess.density.auxbasis import DEFAULT_AUXBASIS, make_auxmol

    try:
        naux = make_auxmol(mol, auxbasis or DEFAULT_AUXBASIS).nao
    except ValueError:  # an element the auxiliary basis lacks is reported where the guess is made
        naux = 0
    return 8 * (_DENSE_MATRICES * mol.nao**2 + 2 * naux**2) / 1e6


def check_memory(mol, limit_mb=None, auxbasis=None) -> float:
    """Refuse a molecule whose calculation would not fit in memory; returns the estimate (MB).

    Parameters
    ----------
    mol : pyscf.gto.Mole
    limit_mb : float, optional
        Memory allowed, MB; None is :func:`available_memory_mb`.

    Raises
    ------
    ValueError
        If :func:`estimate_memory_mb` exceeds the limit.
    """
    need = estimate_memory_mb(mol, auxbasis)
    limit = available_memory_mb() if limit_mb is None else float(limit_mb)
    if need > limit:
        raise ValueError(f"the molecule ({mol.natm} atoms, {mol.nao} basis functions) needs about {need:.0f} MB, "
                         f"more than the {limit:.0f} MB available.")
    return need
