"""The PySCF hook: the ML guess as a PySCF guess, explicit and opt-in.

:func:`init_guess_by_ml` is the plain function, in the style of PySCF's
``init_guess_by_minao(mol)``. :func:`apply` makes one SCF object start from it:

>>> mf = scfguess.apply(pyscf.dft.RKS(mol, xc="pbe").density_fit())
>>> mf.kernel()
>>> mf.scfguess_info["guess"]
'ml'

How :func:`apply` hooks in
--------------------------
It sets ``mf.init_guess = "ml"`` and gives that one object a ``get_init_guess`` that
answers the key ``"ml"`` with the ML guess and every other key as PySCF does. It does
so the way PySCF's own add-ons (``density_fit``, ``PCM``, ``as_scanner``) do: the
object's class is replaced by a subclass made for it (``pyscf.lib.set_class``); no
PySCF class is changed and other objects are untouched. Because PySCF's add-ons keep
the class chain of the object they wrap, the hook survives them in either order:
``apply(mf).density_fit()`` and ``apply(mf.density_fit())`` both start from the ML
guess, built for the final object (its DF tensor, solvent and molecule). A ``dm0``
passed to ``kernel`` wins, as in PySCF.

- ``mf.as_scanner()``: the first geometry starts from the ML guess; later geometries
  use PySCF's usual reuse of the previous density matrix (the scanner passes it as
  ``dm0``). Set ``scanner.mo_coeff = None`` before a call to force the ML guess.
- ``pyscf.geomopt`` drives ``mf.nuc_grad_method().as_scanner()``: same behaviour.
- ``mf.to_gpu()`` (gpu4pyscf) converts the object without the hook (``undo_ml_guess``;
  gpu4pyscf builds its objects from its own classes). Start the GPU calculation from
  the ML guess computed on the CPU object: ``gpu_mf.kernel(dm0=mf.get_init_guess())``.
  gpu4pyscf is not installed here, so this path is untested.

Failures
--------
An element the model or the auxiliary basis does not cover, a model that is missing,
corrupt or too new, a NaN prediction, a failed or non-finite conversion, or a guess
that would not fit in memory give a ``warnings.warn`` and the ``fallback`` guess
(``"minao"`` by default), or raise when ``fallback=None``. A molecule with non-finite
coordinates or two atoms at the same position raises ``ValueError`` in either case:
no guess makes such a calculation meaningful.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
from pyscf import dft, lib, scf

from scfguess.auxbasis import DEFAULT_AUXBASIS, make_auxmol
from scfguess.structures import MIN_DISTANCE

__all__ = ["init_guess_by_ml", "apply", "ml_conversion", "build_scf", "PYSCF_GUESSES", "estimate_memory_mb",
           "available_memory_mb", "check_memory", "check_xc"]

#: Guess names PySCF's ``get_init_guess`` understands (usable as ``fallback``).
PYSCF_GUESSES: tuple[str, ...] = ("minao", "atom", "huckel", "mod_huckel", "sap", "vsap", "1e", "hcore", "chk")

#: Dense (nao, nao) matrices an SCF keeps at once (Fock, density, overlap, core, orbitals, DIIS history).
_DENSE_MATRICES = 30


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


def estimate_memory_mb(mol, auxbasis=DEFAULT_AUXBASIS) -> float:
    """Memory a guess plus SCF on ``mol`` needs at least, MB (estimated before any work).

    Counts the dense orbital-basis matrices of an SCF (``30 nao²``) and the two
    auxiliary-basis matrices of the converter (Coulomb metric and its factor, ``2 naux²``),
    8 bytes each. Blocked work (grids, DF tensor blocks) is bounded by ``mol.max_memory``
    and not counted.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    auxbasis : str
        Auxiliary basis of the density.

    Returns
    -------
    float
        MB.
    """
    nao = mol.nao
    try:
        naux = make_auxmol(mol, auxbasis).nao
    except ValueError:  # an element the auxiliary basis lacks is reported where the guess is made
        naux = 0
    return 8 * (_DENSE_MATRICES * nao**2 + 2 * naux**2) / 1e6


def check_memory(mol, limit_mb=None, auxbasis=DEFAULT_AUXBASIS) -> float:
    """Refuse a molecule whose calculation would not fit in memory.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    limit_mb : float, optional
        Memory allowed, MB; None is :func:`available_memory_mb`.

    Returns
    -------
    float
        The estimate, MB.

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


def check_xc(xc: str) -> str:
    """Return ``xc`` if PySCF's libxc interface knows it; raise ``ValueError`` otherwise."""
    if not isinstance(xc, str) or not xc.strip():
        raise ValueError(f"the functional must be a non-empty string, got {xc!r}.")
    try:
        dft.libxc.parse_xc(xc)
    except (KeyError, ValueError):
        raise ValueError(f"unknown functional {xc!r} (PySCF/libxc does not know it).") from None
    return xc


def build_scf(structure, basis="def2-svp", xc="pbe", *, density_fit=True, grids_level=3, conv_tol=1e-9,
              max_cycle=100, max_memory=None):
    """A Kohn-Sham SCF object for a structure with every setting explicit (used by the ASE calculator and the CLI).

    Parameters
    ----------
    structure : scfguess.structures.Structure
        Positions in Å, charge, spin (2S); open shells get UKS, closed shells RKS.
    basis, xc : str
        Orbital basis and functional.
    density_fit : bool
        RI-J (RI-JK for hybrids) with PySCF's default auxiliary basis.
    grids_level : int
        PySCF DFT grid level, 0-9.
    conv_tol : float
        Energy convergence threshold, Hartree.
    max_cycle : int
    max_memory : float, optional
        MB PySCF may use; None is :func:`available_memory_mb`.

    Returns
    -------
    pyscf SCF object
        Not run, ``verbose = 0``, guess not set.

    Raises
    ------
    ValueError
        Unknown functional or basis, a grid level outside 0-9, an element the basis lacks
        (:class:`~scfguess.errors.UnsupportedElementError`), or a molecule whose estimated
        memory exceeds ``max_memory`` or the memory available.
    """
    from scfguess.structures import to_mole

    check_xc(xc)
    if not 0 <= grids_level <= 9:  # PySCF's radial grid table has levels 0-9; -1 would silently mean 9
        raise ValueError(f"grids level must be between 0 and 9, got {grids_level}.")
    limit = available_memory_mb() if max_memory is None else min(float(max_memory), available_memory_mb())
    mol = to_mole(structure, basis, max_memory=int(limit))
    check_memory(mol, limit)
    mf = (dft.UKS if structure.spin else dft.RKS)(mol, xc=xc)
    mf.grids.level = grids_level
    mf.conv_tol = conv_tol
    mf.max_cycle = max_cycle
    mf.verbose = 0
    return mf.density_fit() if density_fit else mf


def _check_geometry(mol):
    """Raise ValueError for non-finite coordinates or atoms at the same position."""
    coords = mol.atom_coords(unit="Angstrom")
    if not np.all(np.isfinite(coords)):
        raise ValueError("the molecule has NaN or infinite coordinates.")
    if mol.natm > 1:
        from scipy.spatial import cKDTree

        pairs = sorted(map(sorted, cKDTree(coords).query_pairs(r=MIN_DISTANCE)))
        if pairs:
            i, j = pairs[0]
            raise ValueError(f"atoms {i} and {j} of the molecule are at the same position "
                             f"({np.linalg.norm(coords[i] - coords[j]):.3g} Å apart).")


def _scf_for(mol, like):
    """A bare SCF object of ``like``'s kind (RKS/UKS/ROKS or HF, same functional) for another molecule."""
    layout = "uhf" if isinstance(like, scf.uhf.UHF) else "rohf" if isinstance(like, scf.rohf.ROHF) else "rhf"
    if isinstance(like, dft.rks.KohnShamDFT):
        mf = {"rhf": dft.RKS, "uhf": dft.UKS, "rohf": dft.ROKS}[layout](mol, xc=like.xc)
    else:
        mf = {"rhf": scf.RHF, "uhf": scf.UHF, "rohf": scf.ROHF}[layout](mol)
    mf.verbose = 0
    return mf


def ml_conversion(mf, model=None):
    """Predict the density of ``mf.mol`` and convert it for ``mf``, timing each step.

    Parameters
    ----------
    mf : pyscf SCF object
        Not modified (a DF tensor it lacks may be built, as its first cycle would).
    model : None, str, path or loaded model
        See :func:`scfguess.registry.load_model`.

    Returns
    -------
    conversion : scfguess.converter.Conversion
        ``dm`` is what ``mf.make_rdm1()`` returns.
    loaded : the loaded model
    seconds : dict
        ``load`` (reading and verifying the model; ~0 once cached), ``inference`` (prediction).

    Raises
    ------
    UnsupportedElementError, ModelNotInstalledError, ValueError
        As :func:`scfguess.init_guess` does, and ValueError for a non-finite density matrix.
    """
    from scfguess.converter import convert
    from scfguess.guess import predict_coefficients
    from scfguess.registry import load_model

    t0 = time.perf_counter()
    loaded = load_model(model)
    t1 = time.perf_counter()
    coeffs, loaded = predict_coefficients(mf.mol, loaded)
    t2 = time.perf_counter()
    conversion = convert(mf, coeffs, loaded.auxbasis)
    if not np.all(np.isfinite(conversion.dm)):
        raise ValueError("the converted density matrix contains NaN or infinite values")
    return conversion, loaded, {"load": t1 - t0, "inference": t2 - t1}


def init_guess_by_ml(mol, xc="pbe", model=None):
    """ML density-matrix guess for a molecule, in the style of PySCF's ``init_guess_by_minao``.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Any orbital basis; charge and spin (2S) are taken from it.
    xc : str
        Functional whose V_xc builds the guess Fock matrix (use the one of the calculation).
    model : None, str, path or loaded model
        Density model (None = the default model).

    Returns
    -------
    ndarray
        (nao, nao) for a closed shell (what ``RKS.make_rdm1`` returns), (2, nao, nao) for an
        open shell (``UKS``).

    Raises
    ------
    UnsupportedElementError, ModelNotInstalledError, ValueError
        No fallback here; use :func:`apply` for one.

    Examples
    --------
    >>> dm0 = scfguess.init_guess_by_ml(mol)
    >>> pyscf.dft.RKS(mol, xc="pbe").kernel(dm0=dm0)
    """
    _check_geometry(mol)
    mf = (dft.UKS if mol.spin else dft.RKS)(mol, xc=check_xc(xc))
    mf.verbose = 0
    return ml_conversion(mf, model)[0].dm


class _MLGuess:
    """Mixin PySCF's ``lib.set_class`` puts in front of one SCF object's class (see the module doc)."""

    __name_mixin__ = "ML"
    _keys = {"scfguess_model", "scfguess_fallback", "scfguess_info"}

    def get_init_guess(self, mol=None, key=None, **kwargs):
        """Key ``"ml"`` (the default set by :func:`apply`): the ML guess; other keys: PySCF's guesses."""
        if key is None:
            key = self.init_guess
        if not (isinstance(key, str) and key.lower() == "ml"):
            return super().get_init_guess(mol, key, **kwargs)
        target = self if mol is None or mol is self.mol else _scf_for(mol, self)
        _check_geometry(target.mol)
        info = {"guess": "ml", "model": None, "model_sha256": None, "load_seconds": None,
                "inference_seconds": None, "conversion_seconds": None, "fock_builds": None, "k_builds": None,
                "fallback_reason": None}
        try:
            check_memory(target.mol)
            conversion, loaded, seconds = ml_conversion(target, self.scfguess_model)
        except Exception as exc:  # noqa: BLE001 - any failure of the guess is reported and falls back
            reason = f"{type(exc).__name__}: {exc}"
            if self.scfguess_fallback is None:
                raise
            warnings.warn(f"scfguess: ML guess failed ({reason}); using the {self.scfguess_fallback!r} guess.",
                          stacklevel=2)
            info.update(guess=self.scfguess_fallback, fallback_reason=reason)
            self.scfguess_info = info
            return super().get_init_guess(mol, self.scfguess_fallback, **kwargs)
        info.update(model=loaded.name, model_sha256=loaded.sha256, load_seconds=seconds["load"],
                    inference_seconds=seconds["inference"],
                    conversion_seconds=conversion.seconds, fock_builds=conversion.fock_builds,
                    k_builds=conversion.k_builds)
        self.scfguess_info = info
        return conversion.dm

    def undo_ml_guess(self):
        """A view of this object without the hook; ``init_guess`` becomes the fallback (or "minao")."""
        plain = self.view(lib.drop_class(self.__class__, _MLGuess))
        plain.init_guess = self.scfguess_fallback or "minao"
        return plain

    def to_gpu(self):
        """gpu4pyscf's object for this calculation, without the hook (see the module doc)."""
        return self.undo_ml_guess().to_gpu()


def apply(mf, model=None, fallback="minao"):
    """Make one SCF object start from the ML guess (an explicit, opt-in hook).

    Parameters
    ----------
    mf : pyscf SCF object
        RHF/UHF/ROHF or RKS/UKS/ROKS, density-fitted or not, with or without solvent;
        modified in place (``init_guess = "ml"`` and the hook, see the module doc).
    model : None, str, path or loaded model
        Density model (None = the default model), loaded when the first guess is made.
    fallback : str or None
        PySCF guess used, with a warning, when the ML guess cannot be made; None raises
        instead.

    Returns
    -------
    mf
        The same object, as PySCF add-ons return it. After each ML-guess request,
        ``mf.scfguess_info`` holds ``guess`` ("ml" or the fallback used), ``model``,
        ``model_sha256``, ``load_seconds`` (reading the model; ~0 once cached),
        ``inference_seconds``, ``conversion_seconds``, ``fock_builds`` and ``k_builds``
        hidden in the conversion, and ``fallback_reason`` (None when the ML guess was used).

    Raises
    ------
    ValueError
        ``mf`` is not a molecular SCF object, or ``fallback`` is not a PySCF guess name.

    Examples
    --------
    >>> mf = scfguess.apply(pyscf.dft.RKS(mol, xc="pbe").density_fit())
    >>> mf.kernel()
    """
    if not isinstance(mf, scf.hf.SCF):
        raise ValueError(f"apply needs a PySCF SCF object, got {type(mf).__name__}.")
    if hasattr(mf.mol, "lattice_vectors"):
        raise ValueError("periodic systems (pyscf.pbc) are not supported; use a molecule.")
    if fallback is not None and (not isinstance(fallback, str) or fallback.lower() not in PYSCF_GUESSES):
        raise ValueError(f"fallback must be None or a PySCF guess name ({', '.join(PYSCF_GUESSES)}), "
                         f"got {fallback!r}.")
    if not isinstance(mf, _MLGuess):
        lib.set_class(mf, (_MLGuess, mf.__class__))
    mf.scfguess_model = model
    mf.scfguess_fallback = None if fallback is None else fallback.lower()
    mf.scfguess_info = {}
    mf.init_guess = "ml"
    return mf
