"""The density model: the e3nn network, the e3nn <-> PySCF change of basis, and the registry of installed models.

Takes atomic numbers and positions (Å) and returns auxiliary-basis coefficients; it knows nothing of SCF.
The network and registry are imported on first use, so ``scfguess.model.irreps`` stays cheap for the density code.
"""

import importlib

_EXPORTS = {
    "DensityModel": "network", "DensityEnsemble": "network", "ModelConfig": "network", "count_parameters": "network",
    "LoadedModel": "registry", "load_model": "registry", "list_models": "registry", "save_model": "registry",
    "model_dirs": "registry", "default_model_name": "registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"scfguess.model.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'scfguess.model' has no attribute {name!r}")
