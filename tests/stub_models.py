"""Stand-in density models with the interface of :func:`scfguess.model.registry.load_model`'s result.

They let the PySCF hook, the ASE calculator and the CLI be tested before a trained model exists. A real
(untrained, tiny) model saved with :func:`scfguess.model.registry.save_model` is made by :func:`save_tiny_model`.
"""

import numpy as np

from scfguess.density.auxbasis import DEFAULT_AUXBASIS
from scfguess.errors import UnsupportedElementError


class MinaoModel:
    """Predicts the Coulomb-fitted minao (SAD) density in sto-3g: a poor but valid density, any molecule.

    ``calls`` counts predictions; ``elements`` restricts what it covers.
    """

    name, sha256, auxbasis = "minao-fit", "0" * 64, DEFAULT_AUXBASIS

    def __init__(self, elements=("H", "C", "N", "O")):
        self.elements = list(elements)
        self.metadata = {"description": "stand-in"}
        self.calls = 0

    def predict(self, numbers, positions_angstrom):
        from pyscf import gto
        from pyscf.data.elements import ELEMENTS
        from pyscf.scf import hf

        from scfguess import fit_density

        symbols = [ELEMENTS[int(z)] for z in numbers]
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            raise UnsupportedElementError(missing, what="the stand-in model")
        self.calls += 1
        mol = gto.M(atom=list(zip(symbols, np.asarray(positions_angstrom).tolist())), basis="sto-3g",
                    spin=int(sum(numbers)) % 2, verbose=0)
        return fit_density(mol, hf.init_guess_by_minao(mol), self.auxbasis)


class FixedModel(MinaoModel):
    """Returns the given coefficient vector (an oracle density, a NaN vector, a wrong length ...)."""

    name = "fixed"

    def __init__(self, coeffs):
        super().__init__()
        self.coeffs = np.asarray(coeffs, dtype=float)

    def predict(self, numbers, positions_angstrom):
        self.calls += 1
        return self.coeffs.copy()


def save_tiny_model(folder, elements=("H", "C", "O"), default=True):
    """Save an untrained, tiny :class:`scfguess.model.DensityModel` as ``folder/tiny``; returns its path."""
    from scfguess.model.network import DensityModel, ModelConfig
    from scfguess.model.registry import save_model

    module = DensityModel(ModelConfig(elements=tuple(elements), hidden_muls=(4, 2, 2, 2, 2), num_layers=1,
                                      radial_hidden=8, num_basis=4))
    metadata = {"description": "untrained test model",
                "domain": "neutral, closed-shell molecules of the listed elements"}
    path = save_model(module, folder / "tiny", metadata, "# tiny\n")
    if default:
        (folder / "DEFAULT").write_text("tiny\n")
    return path
