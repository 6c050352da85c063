"""The public entry point: a density-matrix guess for a PySCF SCF object."""

import numpy as np

from scfguess.converter import density_to_dm
from scfguess.auxbasis import DEFAULT_AUXBASIS


def predict_coefficients(mol, model=None):
    """Predict density coefficients for ``mol`` with a density model.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    model : None, str, path or loaded model
        None is the default model; a name under ``models/``; a model directory; or an
        object returned by :func:`scfguess.registry.load_model`.

    Returns
    -------
    coeffs : ndarray (naux,)
        In the model's auxiliary basis, PySCF order.
    model : the loaded model
    """
    from scfguess.registry import load_model

    loaded = load_model(model)
    coeffs = loaded.predict(mol.atom_charges(), mol.atom_coords(unit="Angstrom"))
    if not np.all(np.isfinite(coeffs)):
        raise ValueError(f"model {loaded.name} predicted NaN or infinite density coefficients")
    return coeffs, loaded


def init_guess(mf, model=None, coeffs=None, **convert_kwargs):
    """Density-matrix guess for ``mf`` from a predicted (or given) electron density.

    Parameters
    ----------
    mf : pyscf SCF object
        RKS/UKS/ROKS (or HF), density-fitted or not; it is not modified.
    model : None, str, path or loaded model
        Density model used when ``coeffs`` is None (None = the default model).
    coeffs : ndarray (naux,), optional
        Density coefficients in def2-universal-jfit (PySCF order) to convert instead
        of predicting.
    **convert_kwargs
        ``exchange=`` and ``fix_charge=`` of :func:`scfguess.density_to_dm`.

    Returns
    -------
    ndarray
        What ``mf.make_rdm1()`` returns for ``mf``.

    Raises
    ------
    RuntimeError
        If no model is installed and ``coeffs`` is None.
    UnsupportedElementError
        If the model or the auxiliary basis does not cover an element of ``mf.mol``.

    Examples
    --------
    >>> mf = pyscf.dft.RKS(mol, xc="pbe").density_fit()
    >>> mf.kernel(dm0=scfguess.init_guess(mf))
    """
    auxbasis = DEFAULT_AUXBASIS
    if coeffs is None:
        coeffs, loaded = predict_coefficients(mf.mol, model)
        auxbasis = loaded.auxbasis
    return density_to_dm(mf, coeffs, auxbasis, **convert_kwargs)
