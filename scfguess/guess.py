"""The guess pipeline: predict a density (or fit a given one), convert it, check it, time it.

This module is the only place that composes the model and the converter. The PySCF hook, the CLI, the ASE
calculator, SCFbench's ``ml`` and ``oracle`` guesses and the workflows all call :func:`ml_guess` or
:func:`oracle_from_dm`, so each of them gets the same geometry, memory and finiteness checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from scfguess.density.auxbasis import DEFAULT_AUXBASIS
from scfguess.density.converter import convert, resolve_exchange
from scfguess.density.fitting import fit_density
from scfguess.scf import check_geometry, check_memory, spin_layout
from scfguess.structures import atomic_numbers

__all__ = ["Guess", "Prediction", "predict_coefficients", "ml_guess", "oracle_from_dm", "init_guess",
           "init_guess_by_ml", "oracle_guess"]


@dataclass
class Guess:
    """A density-matrix guess and what it cost.

    Attributes
    ----------
    dm : ndarray, (nao, nao) or (2, nao, nao)
        What ``mf.make_rdm1()`` returns for the SCF object it was made for.
    seconds : float
        Wall time charged to the guess (s): inference + conversion (+ fit for the oracle); model loading is
        reported apart in ``load_seconds``.
    load_seconds, inference_seconds, conversion_seconds : float or None
        Reading the model (~0 once cached in the process), the network, the converter.
    fock_builds, k_builds : int
        Coulomb + XC builds and exact-exchange builds hidden in the guess.
    exchange : str
        Exchange treatment the converter used ("none" for pure functionals).
    model : object or None
        The loaded model (``name``, ``sha256``) for ML guesses.
    extra : dict
        Guess-specific facts to record (the ML guess: ``converter_parts``, seconds of J, V_xc and the
        exchange and diagonalisation step).
    """

    dm: np.ndarray
    seconds: float
    load_seconds: float | None = None
    inference_seconds: float | None = None
    conversion_seconds: float | None = None
    fock_builds: int = 0
    k_builds: int = 0
    exchange: str = "none"
    model: object = None
    extra: dict = field(default_factory=dict)


class Prediction(NamedTuple):
    """A model's densities for one molecule (:func:`predict_coefficients`).

    Attributes
    ----------
    coeffs : ndarray (naux,)
        Total density, in the model's auxiliary basis, PySCF order.
    spin_coeffs : ndarray (naux,) or None
        Spin density m = ρ_α − ρ_β in the same basis, for open shells and models that predict it; else None.
    model : the loaded model
    """

    coeffs: np.ndarray
    spin_coeffs: np.ndarray | None
    model: object


def check_exchange(exchange: str) -> str:
    """``exchange`` if the converter knows it ("auto", "sad", "diag[:N]", "pbe[:N]", "gga", "none"); else ValueError
    naming the choices."""
    resolve_exchange(exchange)
    return exchange


def predict_coefficients(mol, model=None) -> Prediction:
    """Predict density coefficients for ``mol`` with a density model.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Atomic numbers are taken from the element symbols, so an ECP does not change them; models that take them
        also get ``mol.charge`` and ``mol.spin``.
    model : None, str, path or loaded model
        See :func:`scfguess.model.load_model`; any object with ``predict(numbers, positions_Å)`` works.

    Returns
    -------
    Prediction

    Raises
    ------
    ValueError
        The model predicted NaN or infinite coefficients.
    """
    from scfguess.model.registry import load_model

    loaded = load_model(model)
    args = [atomic_numbers(mol), mol.atom_coords(unit="Angstrom")]
    if getattr(loaded, "takes_charge_and_spin", False):
        args += [mol.charge, mol.spin]
    spin_coeffs = None
    if mol.spin and getattr(loaded, "predicts_spin", False):
        coeffs, spin_coeffs = loaded.predict_spin(*args)
    else:
        coeffs = loaded.predict(*args)
    for values in (coeffs, spin_coeffs):
        if values is not None and not np.all(np.isfinite(values)):
            raise ValueError(f"model {loaded.name} predicted NaN or infinite density coefficients")
    return Prediction(coeffs, spin_coeffs, loaded)


def _checked(conversion):
    if not np.all(np.isfinite(conversion.dm)):
        raise ValueError("the converted density matrix contains NaN or infinite values")
    return conversion


def ml_guess(mf, model=None, **convert_kwargs) -> Guess:
    """The ML guess for ``mf``: checks, prediction, conversion, each timed.

    Parameters
    ----------
    mf : pyscf SCF object
        RHF/UHF/ROHF or RKS/UKS/ROKS, density-fitted or not; its settings are not changed (a DF tensor it lacks
        may be built, as its first cycle would).
    model : None, str, path or loaded model
        Density model (None = the default model).
    **convert_kwargs
        ``exchange=``, ``fix_charge=``, ``grids_level=`` of :func:`scfguess.density.convert`.

    Returns
    -------
    Guess

    Raises
    ------
    ValueError
        Non-finite coordinates, atoms at the same position, a molecule that does not fit in memory, a non-finite
        prediction or density matrix; :class:`~scfguess.errors.UnsupportedElementError` (a ValueError) for an
        element the model or auxiliary basis lacks.
    ModelNotInstalledError
        No model is installed or the named one is absent.
    """
    from scfguess.model.registry import load_model

    check_geometry(mf.mol)
    check_memory(mf.mol)
    t0 = time.perf_counter()
    loaded = load_model(model)
    t1 = time.perf_counter()
    prediction = predict_coefficients(mf.mol, loaded)
    t2 = time.perf_counter()
    conversion = _checked(convert(mf, prediction.coeffs, loaded.auxbasis, spin_coeffs=prediction.spin_coeffs,
                                  **convert_kwargs))
    t3 = time.perf_counter()
    return Guess(dm=conversion.dm, seconds=t3 - t1, load_seconds=t1 - t0, inference_seconds=t2 - t1,
                 conversion_seconds=t3 - t2, fock_builds=int(conversion.fock_builds),
                 k_builds=int(conversion.k_builds), exchange=conversion.exchange, model=loaded,
                 extra={"converter_parts": dict(conversion.timings)})


def oracle_from_dm(mf, mol_ref, dm_ref, auxbasis=DEFAULT_AUXBASIS, **convert_kwargs) -> Guess:
    """The oracle guess: a converged density matrix of the same molecule, fitted and converted for ``mf``.

    A bound on what any density model in ``auxbasis`` can reach with this converter, not a method.

    Parameters
    ----------
    mf : pyscf SCF object
        The calculation to start.
    mol_ref : pyscf.gto.Mole
        Molecule (and orbital basis) of ``dm_ref``; same atoms and geometry as ``mf.mol``.
    dm_ref : ndarray, (nao, nao) or (2, nao, nao)
        Converged density matrix. When it is spin-resolved and ``mf`` is an open shell, the spin density is
        fitted and converted too (spin-polarised V_xc), as a model with a spin-density output would give it.

    Returns
    -------
    Guess
        ``seconds`` and ``conversion_seconds`` include the fit.
    """
    same = (mol_ref.natm == mf.mol.natm
            and np.array_equal(atomic_numbers(mol_ref), atomic_numbers(mf.mol))
            and np.allclose(mol_ref.atom_coords(), mf.mol.atom_coords(), atol=1e-6))
    if not same:
        raise ValueError("the reference calculation is for a different molecule or geometry")
    check_geometry(mf.mol)
    t0 = time.perf_counter()
    dm_ref = np.asarray(dm_ref)
    coeffs = fit_density(mol_ref, dm_ref, auxbasis)
    if dm_ref.ndim == 3 and spin_layout(mf) != "rhf":
        convert_kwargs.setdefault("spin_coeffs", fit_density(mol_ref, dm_ref[0] - dm_ref[1], auxbasis))
    conversion = _checked(convert(mf, coeffs, auxbasis, **convert_kwargs))
    seconds = time.perf_counter() - t0
    return Guess(dm=conversion.dm, seconds=seconds, conversion_seconds=seconds,
                 fock_builds=int(conversion.fock_builds), k_builds=int(conversion.k_builds),
                 exchange=conversion.exchange)


def init_guess(mf, model=None, coeffs=None, **convert_kwargs):
    """Density-matrix guess for ``mf`` from a predicted (or given) electron density.

    Parameters
    ----------
    mf : pyscf SCF object
        RKS/UKS/ROKS (or HF), density-fitted or not; it is not modified.
    model : None, str, path or loaded model
        Density model used when ``coeffs`` is None (None = the default model).
    coeffs : ndarray (naux,), optional
        Density coefficients in def2-universal-jfit (PySCF order) to convert instead of predicting.
    **convert_kwargs
        ``exchange=`` and ``fix_charge=`` of :func:`scfguess.density_to_dm`; with ``coeffs`` also
        ``spin_coeffs=`` (an open shell's spin density in the same basis).

    Returns
    -------
    ndarray
        What ``mf.make_rdm1()`` returns for ``mf``.

    Examples
    --------
    >>> mf = pyscf.dft.RKS(mol, xc="pbe").density_fit()
    >>> mf.kernel(dm0=scfguess.init_guess(mf))
    """
    if coeffs is None:
        return ml_guess(mf, model, **convert_kwargs).dm
    return _checked(convert(mf, coeffs, DEFAULT_AUXBASIS, **convert_kwargs)).dm


def init_guess_by_ml(mol, xc="pbe", model=None):
    """ML density-matrix guess for a molecule, in the style of PySCF's ``init_guess_by_minao``.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Any orbital basis; charge and spin (2S) are taken from it.
    xc : str
        Functional whose V_xc builds the guess Fock matrix (use the one of the calculation).
    model : None, str, path or loaded model

    Returns
    -------
    ndarray
        (nao, nao) for a closed shell, (2, nao, nao) for an open shell (``UKS``).

    Examples
    --------
    >>> dm0 = scfguess.init_guess_by_ml(mol)
    >>> pyscf.dft.RKS(mol, xc="pbe").kernel(dm0=dm0)
    """
    from pyscf import dft

    from scfguess.scf import check_xc

    mf = (dft.UKS if mol.spin else dft.RKS)(mol, xc=check_xc(xc))
    mf.verbose = 0
    return ml_guess(mf, model).dm


def oracle_guess(mf_ref, mf, auxbasis=DEFAULT_AUXBASIS, **convert_kwargs):
    """Density-matrix guess for ``mf`` from the fitted converged density of ``mf_ref`` (a bound, not a method).

    Parameters
    ----------
    mf_ref : pyscf SCF object
        A converged calculation on the same molecule (basis and functional may differ).
    mf : pyscf SCF object
        The calculation to start.

    Returns
    -------
    ndarray
        What ``mf.make_rdm1()`` returns.
    """
    if mf_ref.mo_coeff is None:
        raise ValueError("the reference calculation has not been run")
    return oracle_from_dm(mf, mf_ref.mol, mf_ref.make_rdm1(), auxbasis, **convert_kwargs).dm

