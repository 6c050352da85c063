"""The initial guesses SCFbench compares: names, validation, and how each one is made and costed.

PySCF silently treats an unknown ``init_guess`` string as ``minao``, so every label is validated here first.

Labels
------
``minao``, ``atom``, ``huckel``, ``mod_huckel``, ``sap``, ``vsap``, ``1e``
    PySCF's own guesses (``mf.get_init_guess(key=...)``).
``pbe-first``
    Converge PBE with RI-J (density fitting, PySCF's default auxiliary basis) from ``minao`` in the same basis and
    start the target functional from its density matrix; the whole PBE run is guess time, its cycles are hidden
    Fock builds.
``oracle``
    The converged density of the ``minao`` run of the same molecule, basis, functional and settings, fitted and
    converted by :func:`scfguess.guess.oracle_from_dm`. The reference run is not counted (the oracle is a bound, not
    a method); it is taken from the run's reference cache when the ``minao`` job has stored it there.
``ml`` / ``ml:NAME``
    The default / a named density model through :func:`scfguess.guess.ml_guess`, the pipeline the hook, CLI and
    ASE calculator run; inference and conversion are timed separately.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from scfguess.guess import Guess, check_exchange, ml_guess, oracle_from_dm
from scfguess.scf import PYSCF_GUESSES, match_spin_layout

__all__ = ["GUESS_KINDS", "GuessSpec", "parse_guess", "ConvergedReference", "make_guess", "guess_quality",
           "commutator_norm"]

#: Every guess kind scfbench knows.
GUESS_KINDS: tuple[str, ...] = (*PYSCF_GUESSES, "pbe-first", "oracle", "ml")


@dataclass(frozen=True)
class GuessSpec:
    """A validated guess label.

    Attributes
    ----------
    label : str
        As given (``"ml:small"``, ``"ml+sad"``); recorded with every result.
    kind : str
        One of :data:`GUESS_KINDS`.
    model : str or None
        Model name for ``ml:NAME``; None for the default model and for other kinds.
    exchange : str or None
        Exact-exchange treatment of the converter for ``ml`` and ``oracle`` (``+EXCHANGE`` after the label,
        checked by :func:`scfguess.guess.check_exchange`); None: the converter's ``"auto"``.
    """

    label: str
    kind: str
    model: str | None = None
    exchange: str | None = None

    @property
    def convert_options(self) -> dict:
        """Keyword arguments for the converter (empty for its defaults)."""
        return {} if self.exchange is None else {"exchange": self.exchange}


def parse_guess(label: str) -> GuessSpec:
    """Validate one guess label.

    ``ml`` and ``oracle`` take the converter's exchange treatment for hybrids after a ``+``: ``ml+sad``,
    ``ml:NAME+diag:2``, ``oracle+none``.

    Raises
    ------
    ValueError
        Unknown guess name, ``ml:`` without a model name, or an exchange treatment the converter does not know
        or on a guess without a converter.
    """
    text = label.strip()
    base, plus, exchange = text.partition("+")
    if plus:
        try:
            check_exchange(exchange)
        except ValueError as exc:
            raise ValueError(f"guess {label!r}: {exc}") from None
    kind, sep, model = base.partition(":")
    if sep and kind == "ml":
        if not model:
            raise ValueError(f"guess {label!r} names no model; write 'ml' for the default model or 'ml:NAME'.")
        return GuessSpec(text, "ml", model, exchange or None)
    if base in GUESS_KINDS:
        if plus and base not in ("ml", "oracle"):
            raise ValueError(f"guess {label!r}: only ml and oracle take an exchange treatment (+EXCHANGE).")
        return GuessSpec(text, base, None, exchange or None)
    raise ValueError(f"unknown guess {label!r}; known guesses: {', '.join(GUESS_KINDS)}, ml:MODEL, and ml or "
                     "oracle with +EXCHANGE.")


@dataclass(frozen=True)
class ConvergedReference:
    """The converged ``minao`` run an ``oracle`` guess starts from.

    Attributes
    ----------
    dm : ndarray, shape (nao, nao) or (2, nao, nao)
        Converged density matrix.
    cycles : int
        SCF cycles of the reference run.
    converged : bool
        Whether it converged.
    """

    dm: np.ndarray
    cycles: int
    converged: bool


def make_guess(spec: GuessSpec, mf, make_scf, model=None, reference: ConvergedReference | None = None) -> Guess:
    """Compute the guess ``spec`` for the (not yet run) SCF object ``mf``.

    Parameters
    ----------
    spec : GuessSpec
        Which guess.
    mf : pyscf SCF object
        The calculation to start; its settings are not changed.
    make_scf : callable
        ``make_scf(xc, density_fit) -> SCF object`` for the same molecule and settings; builds the PBE run of
        ``pbe-first`` and the reference of ``oracle``.
    model : object, optional
        Loaded density model for ``ml`` (see :func:`scfguess.model.load_model`).
    reference : ConvergedReference, optional
        The converged ``minao`` run for ``oracle``; run here when not given.

    Returns
    -------
    scfguess.guess.Guess
        ``extra`` holds what the record stores beside the common fields.
    """
    if spec.kind in PYSCF_GUESSES:
        t0 = time.perf_counter()
        dm = mf.get_init_guess(mf.mol, key=spec.kind)
        return Guess(dm=dm, seconds=time.perf_counter() - t0)
    if spec.kind == "pbe-first":
        t0 = time.perf_counter()
        mf_pbe = make_scf("pbe", True)
        mf_pbe.kernel(dm0=mf_pbe.get_init_guess(mf_pbe.mol, key="minao"))
        dm = match_spin_layout(mf_pbe.make_rdm1(), mf)
        return Guess(dm=dm, seconds=time.perf_counter() - t0, fock_builds=int(mf_pbe.cycles),
                     extra={"pbe_cycles": int(mf_pbe.cycles), "pbe_converged": bool(mf_pbe.converged)})
    if spec.kind == "oracle":
        if reference is None:
            mf_ref = make_scf(None, None)
            mf_ref.kernel(dm0=mf_ref.get_init_guess(mf_ref.mol, key="minao"))
            reference = ConvergedReference(mf_ref.make_rdm1(), int(mf_ref.cycles), bool(mf_ref.converged))
        guess = oracle_from_dm(mf, mf.mol, reference.dm, **spec.convert_options)
        guess.extra = {"reference_cycles": reference.cycles, "reference_converged": reference.converged,
                       "exchange": guess.exchange}
        return guess
    if spec.kind == "ml":
        guess = ml_guess(mf, model, **spec.convert_options)
        guess.extra = {"exchange": guess.exchange}
        return guess
    raise ValueError(f"unknown guess kind {spec.kind!r}.")


def guess_quality(mf, dm) -> tuple[float, float]:
    """Energy and orbital-gradient norm of a guess density matrix (one extra Fock build; not timed).

    Parameters
    ----------
    mf : pyscf SCF object
        Any state; only its integrals and functional are used.
    dm : ndarray, shape (nao, nao) or (2, nao, nao)
        Guess density matrix.

    Returns
    -------
    energy : float
        ``mf.energy_tot(dm)`` in Hartree (the functional evaluated at the guess density).
    gradient_norm : float
        Frobenius norm of the commutator ``F D S - S D F`` in the Löwdin-orthogonalised AO basis, summed over
        spins (Hartree); zero exactly at self-consistency. ``F`` is the Fock matrix of ``dm``.
    """
    dm = np.asarray(dm)
    mol = mf.mol
    h1e = mf.get_hcore(mol)
    s1e = mf.get_ovlp(mol)
    vhf = mf.get_veff(mol, dm)
    energy = float(mf.energy_tot(dm, h1e, vhf))
    return energy, commutator_norm(mf.get_fock(h1e, s1e, vhf, dm), dm, s1e)


def commutator_norm(fock, dm, s1e) -> float:
    """Frobenius norm of ``F D S - S D F`` in the Löwdin-orthogonalised AO basis, summed over spins (Hartree).

    Parameters
    ----------
    fock, dm : ndarray (nao, nao) or (2, nao, nao)
        Fock matrix of ``dm`` and the density matrix.
    s1e : ndarray (nao, nao)
        Overlap matrix.
    """
    w, v = np.linalg.eigh(s1e)
    keep = w > 1e-10
    x = (v[:, keep] / np.sqrt(w[keep])) @ v[:, keep].T
    fock, dm = np.asarray(fock), np.asarray(dm)
    focks = fock if fock.ndim == 3 else fock[None]
    dms = dm if dm.ndim == 3 else dm[None]
    total = 0.0
    for f, d in zip(focks, dms):
        comm = f @ d @ s1e - s1e @ d @ f
        total += float(np.sum((x.T @ comm @ x) ** 2))
    return float(np.sqrt(total))
