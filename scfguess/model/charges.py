"""Global inputs of the density model: total charge and 2S per structure, EEQ charges, a learned charge equilibration.

The density network is local (cutoff 4.5 Å); the molecule's total charge and 2S reach it as per-atom scalar inputs
(:data:`GLOBAL_INPUTS`, :func:`per_structure`), and where charge sits across the whole molecule through two pieces:

- :func:`eeq_charges`: atomic partial charges of the electronegativity-equilibration model EEQ 2019
  (Caldeweyher et al., J. Chem. Phys. 150, 154122 (2019)) from ``tad-multicharge``, at the molecule's total
  charge; invariant scalars, used as node inputs.
- :class:`ChargeEquilibration`: the charge-equilibration layer of fourth-generation neural network potentials
  (Ko et al., Nat. Commun. 12, 398 (2021)). The network gives each atom an electronegativity χ_i from its local
  features; with a learned hardness J_Z and Gaussian width σ_Z per element, the charges minimise

      E(q) = Σ_i (χ_i q_i + ½ (J_Z + 1/(σ_Z √π)) q_i²) + Σ_{i<j} q_i q_j erf(r_ij / (√2 γ_ij)) / r_ij,
      γ_ij = sqrt(σ_i² + σ_j²),  subject to Σ_i q_i = Q exactly,

  a linear solve per molecule that couples every atom to every other through the Coulomb interaction of
  Gaussian charges. The charges then feed the output heads. Chosen over a latent-Ewald or long-range message
  block because it carries the exact total charge by construction (ions and zwitterions) and its output is a
  physical quantity, the charge each atom carries, which is what the guess gets wrong.

Lengths inside this module are in Bohr (positions come in Å), charges in e.
"""

from __future__ import annotations

import math

import torch
from pyscf.data import nist

__all__ = ["GLOBAL_INPUTS", "check_global_inputs", "eeq_charges", "ChargeEquilibration", "per_structure"]

#: Names of the per-atom scalar inputs a model can take beside the species (``ModelConfig.global_inputs``): the
#: molecule's total charge (e), each atom's EEQ charge at that total charge, the molecule's 2S.
GLOBAL_INPUTS = ("charge", "eeq", "spin")

_BOHR_PER_ANGSTROM = 1.0 / nist.BOHR


def per_structure(values, batch: torch.Tensor | None, natoms: int, dtype) -> torch.Tensor:
    """A per-structure quantity (total charge, 2S) as a tensor (nstructures,); ``None`` means zero for all."""
    nstructures = 1 if batch is None or natoms == 0 else int(batch.max()) + 1
    if values is None:
        return torch.zeros(nstructures, dtype=dtype)
    out = torch.as_tensor(values, dtype=dtype).reshape(-1)
    if out.numel() == 1 and nstructures > 1:
        out = out.expand(nstructures)
    if out.numel() != nstructures:
        raise ValueError(f"got {out.numel()} values for {nstructures} structures.")
    return out


def eeq_charges(numbers: torch.Tensor, positions: torch.Tensor, total_charge: torch.Tensor,
                batch: torch.Tensor | None = None) -> torch.Tensor:
    """EEQ 2019 atomic charges (e) of one or several concatenated structures, no gradient.

    Parameters
    ----------
    numbers : Tensor (n,) int
    positions : Tensor (n, 3), Å
    total_charge : Tensor (nstructures,)
        Total charge of each structure (e); the charges of a structure sum to it.
    batch : Tensor (n,) int, optional
        Structure index of each atom.

    Returns
    -------
    Tensor (n,), dtype of ``positions``
    """
    try:
        from tad_mctc.io.structure import Structure
        from tad_multicharge import get_eeq_charges
    except ImportError:
        raise ImportError("this model takes EEQ charges, which need tad-multicharge: "
                          "pip install 'scfguess[train]' (or 'tad-multicharge>=0.7').") from None
    if batch is None:
        batch = torch.zeros(len(numbers), dtype=torch.long)
    out = torch.zeros(len(numbers), dtype=positions.dtype, device=positions.device)
    with torch.no_grad():
        for k in range(len(total_charge)):
            atoms = torch.nonzero(batch == k, as_tuple=True)[0]
            if atoms.numel() == 0:
                continue
            structure = Structure(numbers=numbers[atoms].cpu(),
                                  positions=positions[atoms].detach().cpu().double() * _BOHR_PER_ANGSTROM,
                                  charge=total_charge[k].detach().cpu().double())
            out[atoms] = get_eeq_charges(structure).to(out)
    return out


class ChargeEquilibration(torch.nn.Module):
    """Learned charge equilibration (module docstring): per-atom scalar features -> atomic charges (e).

    Parameters
    ----------
    numbers : sequence of int
        Atomic numbers of the species, in the model's species order.
    num_features : int
        Width of the scalar features the electronegativity is read from.
    hidden : int
        Width of the electronegativity MLP.
    """

    def __init__(self, numbers, num_features: int, hidden: int = 16):
        super().__init__()
        from pyscf.data.radii import COVALENT

        self.electronegativity = torch.nn.Sequential(
            torch.nn.Linear(num_features, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 1))
        self.species_electronegativity = torch.nn.Parameter(torch.zeros(len(numbers)))
        # softplus^-1 of 1 Hartree/e^2 and of the covalent radius (Bohr): a sensible start, then learned.
        self.raw_hardness = torch.nn.Parameter(torch.full((len(numbers),), math.log(math.e - 1.0)))
        radii = torch.tensor([COVALENT[z] for z in numbers], dtype=torch.get_default_dtype())
        self.raw_width = torch.nn.Parameter(torch.log(torch.expm1(radii)))

    def forward(self, features, species, positions, total_charge, batch=None):
        """Atomic charges.

        Parameters
        ----------
        features : Tensor (n, num_features)
            Invariant per-atom features.
        species : Tensor (n,) int
            Species index of each atom.
        positions : Tensor (n, 3), Å
        total_charge : Tensor (nstructures,)
        batch : Tensor (n,) int, optional

        Returns
        -------
        Tensor (n,)
            Charges (e); those of each structure sum exactly to its total charge.
        """
        chi = self.electronegativity(features).squeeze(-1) + self.species_electronegativity[species]
        hardness = torch.nn.functional.softplus(self.raw_hardness)[species]
        width = torch.nn.functional.softplus(self.raw_width)[species]
        r_bohr = positions * _BOHR_PER_ANGSTROM
        if batch is None:
            batch = torch.zeros(len(species), dtype=torch.long, device=positions.device)
        q = torch.zeros_like(chi)
        for k in range(len(total_charge)):
            atoms = torch.nonzero(batch == k, as_tuple=True)[0]
            n = atoms.numel()
            if n == 0:
                continue
            r = torch.cdist(r_bohr[atoms], r_bohr[atoms])
            w = width[atoms]
            gamma = torch.sqrt(w[:, None] ** 2 + w[None, :] ** 2)
            eye = torch.eye(n, dtype=chi.dtype, device=chi.device)
            safe_r = r + eye  # the diagonal is replaced below
            coulomb = torch.erf(safe_r / (math.sqrt(2.0) * gamma)) / safe_r * (1.0 - eye)
            a = coulomb + torch.diag(hardness[atoms] + 1.0 / (w * math.sqrt(math.pi)))
            ones = torch.ones(n, 1, dtype=chi.dtype, device=chi.device)
            system = torch.cat([torch.cat([a, ones], 1), torch.cat([ones.T, ones.new_zeros(1, 1)], 1)], 0)
            rhs = torch.cat([-chi[atoms], total_charge[k].reshape(1).to(chi)])
            q = q.index_put((atoms,), torch.linalg.solve(system, rhs)[:n])
        return q


def check_global_inputs(names) -> tuple[str, ...]:
    """The global-input names as a tuple; raises ValueError naming an unknown one."""
    names = tuple(names)
    unknown = [n for n in names if n not in GLOBAL_INPUTS]
    if unknown:
        raise ValueError(f"unknown global input {unknown[0]!r}; choose from {', '.join(GLOBAL_INPUTS)}.")
    return names

