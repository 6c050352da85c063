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
coordinates or two atoms at the same position, or a charge it cannot plausibly have
(:func:`scfguess.structures.check_charge_spin`: water -30 or +8), raises ``ValueError``
in either case: no guess makes such a calculation meaningful.

An SCF started from the ML guess (``kernel()`` without ``dm0``) that does not converge in
``max_cycle`` cycles is run once more from ``minao``, with a warning; ``scfguess_info``
then has ``retry="minao"`` and the cycles (``ml_cycles``) and energy (``ml_energy``) of
the unconverged run, and ``mf.cycles`` counts the second run only.
"""

from __future__ import annotations

import warnings

from pyscf import lib, scf

from scfguess.errors import GeometryError
from scfguess.guess import ml_guess
from scfguess.scf import PYSCF_GUESSES, scf_like
from scfguess.structures import check_mole

#: PySCF guess an unconverged ML-started SCF is retried from.
RETRY_GUESS = "minao"

__all__ = ["apply"]


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
        target = self if mol is None or mol is self.mol else scf_like(mol, self)
        check_mole(target.mol)  # an impossible charge or spin: no guess helps, so no fallback either
        info = {"guess": "ml", "model": None, "model_sha256": None, "load_seconds": None,
                "inference_seconds": None, "conversion_seconds": None, "fock_builds": None, "k_builds": None,
                "fallback_reason": None, "retry": None, "ml_cycles": None, "ml_energy": None}
        try:
            guess = ml_guess(target, self.scfguess_model)
        except GeometryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure of the guess is reported and falls back
            reason = f"{type(exc).__name__}: {exc}"
            if self.scfguess_fallback is None:
                raise
            warnings.warn(f"scfguess: ML guess failed ({reason}); using the {self.scfguess_fallback!r} guess.",
                          stacklevel=2)
            info.update(guess=self.scfguess_fallback, fallback_reason=reason)
            self.scfguess_info = info
            return super().get_init_guess(mol, self.scfguess_fallback, **kwargs)
        info.update(model=guess.model.name, model_sha256=guess.model.sha256, load_seconds=guess.load_seconds,
                    inference_seconds=guess.inference_seconds, conversion_seconds=guess.conversion_seconds,
                    fock_builds=guess.fock_builds, k_builds=guess.k_builds)
        self.scfguess_info = info
        return guess.dm

    def scf(self, dm0=None, **kwargs):
        """PySCF's SCF (``kernel`` calls it); from the ML guess, retried once from minao if it does not converge."""
        # PySCF itself starts from the existing orbitals when there are any (mirrored here: no guess is made then).
        ml_start = (dm0 is None and (self.mo_coeff is None or self.mo_occ is None)
                    and isinstance(self.init_guess, str) and self.init_guess.lower() == "ml")
        super().scf(dm0, **kwargs)
        info = self.scfguess_info
        if ml_start and not self.converged and info.get("guess") == "ml":
            ml_cycles, ml_energy = int(self.cycles), float(self.e_tot)
            warnings.warn(f"scfguess: the SCF from the ML guess did not converge in {ml_cycles} cycles; running it "
                          f"once more from {RETRY_GUESS!r}.", stacklevel=2)
            super().scf(super().get_init_guess(self.mol, RETRY_GUESS), **kwargs)
            info.update(retry=RETRY_GUESS, ml_cycles=ml_cycles, ml_energy=ml_energy)
        return self.e_tot

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
        hidden in the conversion, ``fallback_reason`` (None when the ML guess was used),
        and ``retry`` ("minao" when the SCF from the ML guess did not converge and was run
        again, with ``ml_cycles`` and ``ml_energy`` of that run; otherwise None).

    Raises
    ------
    ValueError
        ``mf`` is not a molecular SCF object, ``fallback`` is not a PySCF guess name, or
        the molecule's charge or spin is refused by
        :func:`scfguess.structures.check_charge_spin` (water with charge -30).

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
    if getattr(mf.mol, "_atm", None) is not None and mf.mol.natm:  # a built molecule: refuse it now
        check_mole(mf.mol)
    if not isinstance(mf, _MLGuess):
        lib.set_class(mf, (_MLGuess, mf.__class__))
    mf.scfguess_model = model
    mf.scfguess_fallback = None if fallback is None else fallback.lower()
    mf.scfguess_info = {}
    mf.init_guess = "ml"
    return mf
