"""E(3)-equivariant network predicting auxiliary-basis density coefficients (NequIP-like, e3nn).

Input: atomic numbers, positions in Ångström (the model's only length unit; the cutoff is in Å) and, for models
that take them, each structure's total charge (e) and 2S.
Output: one coefficient vector per structure over the atoms' auxiliary functions (def2-universal-jfit by default),
in PySCF's spherical aux AO order, the same order as ``scfguess.density.auxbasis.make_auxmol`` and the HDF5 shards.

Architecture: one-hot species embedding (with optional per-atom scalars, ``global_inputs``: the total charge, EEQ
charges, 2S; :mod:`scfguess.model.charges`) -> ``num_layers`` interaction blocks (tensor-product convolution of
neighbour features with spherical harmonics of the edge direction, weights from a Bessel radial basis with a
polynomial cutoff, gated nonlinearity, residual self-connection) -> optionally a learned charge equilibration
(``charge_equilibration``: atomic charges under the exact total charge, appended as one more scalar per atom)
-> a species-dependent equivariant linear head (and, with ``spin_density``, a second one for the spin density)
giving exactly each element's auxiliary irreps. The head's output, in e3nn's harmonic basis, is mapped to PySCF's
basis with :func:`scfguess.model.irreps.pyscf_to_e3nn`, multiplied by a per-shell scale and added to a per-element
atomic reference (a spherical free-atom density) when ``delta`` is on:

    c_atom = reference[Z] + scale[Z] * head[Z](h_atom)

The scale and the references are buffers fixed before training (they are stored with the weights).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from pyscf.data.elements import ELEMENTS
from pyscf.data.elements import charge as atomic_number

from scfguess.errors import UnsupportedElementError
from scfguess.model.charges import ChargeEquilibration, check_global_inputs, eeq_charges, per_structure
from scfguess.model.irreps import element_irreps, pyscf_to_e3nn, shell_angular_momenta

DEFAULT_ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl")


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of :class:`DensityModel` (stored in a model's metadata.json).

    Attributes
    ----------
    elements : tuple of str
        Element symbols the model covers.
    auxbasis : str
        Auxiliary basis of the output.
    cutoff : float
        Neighbour cutoff, Å.
    num_basis : int
        Number of Bessel radial functions.
    cutoff_p : int
        Exponent of the polynomial cutoff envelope.
    lmax_sh : int
        Largest l of the edge spherical harmonics.
    hidden_muls : tuple of int
        Multiplicities of the hidden irreps 0e, 1o, 2e, 3o, 4e (all are needed by the output head).
    num_layers : int
        Interaction blocks.
    radial_hidden : int
        Width of the radial MLP.
    avg_num_neighbors : float
        Normalisation of the neighbour sum.
    delta : bool
        Predict the difference to the per-element atomic reference densities.
    global_inputs : tuple of str
        Per-atom scalar inputs beside the species: ``"charge"`` (the structure's total charge, e), ``"eeq"``
        (EEQ 2019 atomic charges at that total charge), ``"spin"`` (the structure's 2S). Empty: the model ignores
        charge and spin.
    charge_equilibration : bool
        Add the learned charge-equilibration layer before the heads.
    spin_density : bool
        Add heads for the spin density m = ρ_α − ρ_β (same auxiliary basis, no reference), trained on the labels'
        fitted spin densities; the guess converts it for open shells.
    """

    elements: tuple[str, ...] = DEFAULT_ELEMENTS
    auxbasis: str = "def2-universal-jfit"
    cutoff: float = 4.5
    num_basis: int = 8
    cutoff_p: int = 6
    lmax_sh: int = 3
    hidden_muls: tuple[int, ...] = (32, 12, 8, 4, 4)
    num_layers: int = 3
    radial_hidden: int = 32
    avg_num_neighbors: float = 12.0
    delta: bool = True
    global_inputs: tuple[str, ...] = ()
    charge_equilibration: bool = False
    spin_density: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a JSON dict (lists become tuples); unknown keys raise ValueError naming them."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown model configuration keys {', '.join(unknown)}; this scfguess knows "
                             f"{', '.join(f.name for f in fields(cls))}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def __post_init__(self):
        check_global_inputs(self.global_inputs)

    @property
    def takes_charge_and_spin(self) -> bool:
        """Whether the total charge or 2S changes the prediction."""
        return bool(self.global_inputs) or self.charge_equilibration

    @property
    def knows_total_charge(self) -> bool:
        """Whether the prediction depends on the total charge (the ``charge`` or ``eeq`` input, or the charge
        equilibration); a ``spin`` input alone does not."""
        return self.charge_equilibration or bool({"charge", "eeq"} & set(self.global_inputs))

    def to_dict(self) -> dict:
        """JSON-serialisable dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def hidden_irreps(muls) -> o3.Irreps:
    """Hidden feature irreps ``m0x0e + m1x1o + ...`` (natural parity), zero multiplicities dropped."""
    return o3.Irreps([(m, (l, (-1) ** l)) for l, m in enumerate(muls) if m > 0])


class BesselBasis(torch.nn.Module):
    """sqrt(2/rc) sin(n pi r/rc)/r, n = 1..num_basis, times the polynomial envelope of NequIP (exponent p)."""

    def __init__(self, cutoff: float, num_basis: int, p: int):
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = int(p)
        self.register_buffer("freqs", torch.arange(1, num_basis + 1) * math.pi / cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """r: (nedge,) Å -> (nedge, num_basis)."""
        x = r / self.cutoff
        p = self.p
        env = (1.0 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2))
        env = env * (x < 1.0)
        basis = math.sqrt(2.0 / self.cutoff) * torch.sin(self.freqs * r[:, None]) / r[:, None]
        return basis * env[:, None]


class Interaction(torch.nn.Module):
    """One NequIP-style convolution: linear -> TP with edge harmonics (radial weights) -> sum -> linear -> gate."""

    def __init__(self, irreps_in, irreps_hidden, irreps_sh, num_basis, radial_hidden, avg_num_neighbors):
        super().__init__()
        irreps_in = o3.Irreps(irreps_in)
        irreps_hidden = o3.Irreps(irreps_hidden)
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l > 0])
        gates = o3.Irreps([(gated.num_irreps, "0e")]) if gated.num_irreps else o3.Irreps("")
        self.gate = Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
        wanted = {ir for _, ir in self.gate.irreps_in}
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_edge) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_edge:
                    if ir_out in wanted:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        mid = o3.Irreps(mid)
        mid_sorted, perm, _ = mid.sort()
        instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, mid_sorted, instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial = FullyConnectedNet([num_basis, radial_hidden, radial_hidden, self.tp.weight_numel],
                                        torch.nn.functional.silu)
        self.linear_out = o3.Linear(mid_sorted.simplify(), self.gate.irreps_in)
        self.self_connection = o3.Linear(irreps_in, self.gate.irreps_in)
        self.norm = 1.0 / math.sqrt(avg_num_neighbors)
        self.irreps_out = self.gate.irreps_out
        self.residual = irreps_in == self.irreps_out

    def forward(self, x, sh, radial, src, dst):
        """x: (n, irreps_in.dim); sh: (nedge, sh.dim); radial: (nedge, num_basis); src, dst: (nedge,) -> (n, out)."""
        h = self.linear_in(x)
        messages = self.tp(h[src], sh, self.radial(radial))
        agg = torch.zeros(x.shape[0], messages.shape[1], dtype=x.dtype, device=x.device)
        agg = agg.index_add(0, dst, messages) * self.norm
        out = self.gate(self.linear_out(agg) + self.self_connection(x))
        return x + out if self.residual else out


def neighbor_list(positions: torch.Tensor, cutoff: float, batch: torch.Tensor | None = None):
    """All ordered atom pairs closer than ``cutoff`` within the same structure.

    Parameters
    ----------
    positions : Tensor (n, 3), Å
    cutoff : float, Å
    batch : Tensor (n,) int, optional
        Structure index of each atom (pairs across structures are excluded).

    Returns
    -------
    src, dst : Tensor (nedge,) int64
    """
    d = torch.cdist(positions, positions)
    mask = d < cutoff
    mask.fill_diagonal_(False)
    if batch is not None:
        mask &= batch[:, None] == batch[None, :]
    src, dst = torch.nonzero(mask, as_tuple=True)
    return src, dst


class DensityModel(torch.nn.Module):
    """Equivariant density-coefficient model; see the module docstring.

    Parameters
    ----------
    config : ModelConfig
        Hyperparameters.
    """

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.elements = tuple(config.elements)
        self.auxbasis = config.auxbasis
        self.numbers = tuple(atomic_number(s) for s in self.elements)
        table = torch.full((119,), -1, dtype=torch.long)
        for i, z in enumerate(self.numbers):
            table[z] = i
        self.register_buffer("species_of_z", table, persistent=False)
        irreps_h = hidden_irreps(config.hidden_muls)
        for l in range(5):
            if l < len(config.hidden_muls) and config.hidden_muls[l] > 0:
                continue
            needed = any(l in shell_angular_momenta(s, config.auxbasis) for s in self.elements)
            if needed:
                raise ValueError(f"hidden_muls must give l={l} a positive multiplicity: the output needs it.")
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.lmax_sh)
        self.radial = BesselBasis(config.cutoff, config.num_basis, config.cutoff_p)
        self.global_inputs = tuple(config.global_inputs)
        irreps_embed = o3.Irreps([(config.hidden_muls[0], "0e")])
        self.embedding = o3.Linear(o3.Irreps([(len(self.elements) + len(self.global_inputs), "0e")]), irreps_embed)
        layers, irreps = [], irreps_embed
        for _ in range(config.num_layers):
            layer = Interaction(irreps, irreps_h, self.irreps_sh, config.num_basis, config.radial_hidden,
                                config.avg_num_neighbors)
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = torch.nn.ModuleList(layers)
        self.num_scalars = sum(mul for mul, ir in irreps if ir.l == 0)  # the gate puts the scalars first
        self.charge_equilibration = None
        if config.charge_equilibration:
            self.charge_equilibration = ChargeEquilibration(self.numbers, self.num_scalars)
            irreps = irreps + o3.Irreps("1x0e")
        self.heads = torch.nn.ModuleList()
        self.spin_heads = torch.nn.ModuleList() if config.spin_density else None
        self.nfunc = []
        self._to_pyscf = []
        for i, symbol in enumerate(self.elements):
            ls = shell_angular_momenta(symbol, config.auxbasis)
            out = element_irreps(symbol, config.auxbasis)
            self.heads.append(o3.Linear(irreps, out))
            if config.spin_density:
                self.spin_heads.append(o3.Linear(irreps, out))
            self.nfunc.append(out.dim)
            self._to_pyscf.append(pyscf_to_e3nn(ls))  # float64 NumPy: cast per call, exact in float64 runs
            self.register_buffer(f"scale_{i}", torch.ones(out.dim))
            self.register_buffer(f"reference_{i}", torch.zeros(out.dim))
            block = torch.tensor([l for l in ls for _ in range(2 * l + 1)])
            self.register_buffer(f"block_l_{i}", block, persistent=False)
        self.register_buffer("nfunc_table", torch.tensor(self.nfunc, dtype=torch.long), persistent=False)

    @property
    def takes_charge_and_spin(self) -> bool:
        """Whether the total charge or 2S changes the prediction."""
        return self.config.takes_charge_and_spin

    @property
    def predicts_spin(self) -> bool:
        """Whether the model has spin-density heads."""
        return self.config.spin_density

    # ------------------------------------------------------------------ buffers set before training
    def set_scales(self, symbol: str, scale: np.ndarray) -> None:
        """Set the per-function output scale of one element (PySCF order, (nfunc,); constant within a shell)."""
        getattr(self, f"scale_{self.elements.index(symbol)}").copy_(torch.as_tensor(scale))

    def set_reference(self, symbol: str, coeffs: np.ndarray) -> None:
        """Set the atomic reference coefficients of one element (PySCF order, (nfunc,)); only l = 0 is kept.

        A free-atom reference must be spherical to keep the model equivariant; components of l > 0 are dropped.
        """
        i = self.elements.index(symbol)
        c = torch.as_tensor(np.asarray(coeffs), dtype=torch.float32) * (getattr(self, f"block_l_{i}") == 0)
        getattr(self, f"reference_{i}").copy_(c)

    def reference(self, symbol: str) -> np.ndarray:
        """Atomic reference coefficients of one element, PySCF order (nfunc,)."""
        return getattr(self, f"reference_{self.elements.index(symbol)}").detach().cpu().double().numpy()

    def scales(self, symbol: str) -> np.ndarray:
        """Output scale of one element, PySCF order (nfunc,)."""
        return getattr(self, f"scale_{self.elements.index(symbol)}").detach().cpu().double().numpy()

    # ------------------------------------------------------------------ forward
    def species(self, numbers: torch.Tensor) -> torch.Tensor:
        """Species index of each atom; raises UnsupportedElementError for atoms outside ``elements``."""
        numbers = torch.as_tensor(numbers, dtype=torch.long)
        if numbers.numel() and (numbers.min() < 0 or numbers.max() > 118):
            raise ValueError("atomic numbers must lie in 0..118.")
        species = self.species_of_z[numbers]
        if (species < 0).any():
            missing = sorted({ELEMENTS[int(z)] for z in numbers[species < 0]})
            raise UnsupportedElementError(missing, what=f"the density model (elements {', '.join(self.elements)})")
        return species

    def coefficient_offsets(self, species: torch.Tensor) -> torch.Tensor:
        """Start of each atom's block in the flat coefficient vector, (n+1,) int64."""
        counts = self.nfunc_table[species]
        return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])

    def forward(self, numbers, positions, batch=None, edges=None, raw=False, charge=None, spin=None,
                with_spin=False):
        """Predict coefficients of one or several concatenated structures.

        Parameters
        ----------
        numbers : Tensor (n,) int
            Atomic numbers.
        positions : Tensor (n, 3)
            Å, dtype of the model.
        batch : Tensor (n,) int, optional
            Structure index of each atom when several structures are concatenated.
        edges : tuple of Tensor (nedge,), optional
            Precomputed (src, dst) neighbour pairs within ``cutoff``; computed here when omitted.
        raw : bool
            Return the head output before scale and reference (PySCF order, dimensionless).
        charge, spin : Tensor (nstructures,) or float, optional
            Total charge (e) and 2S of each structure; default 0. Ignored unless the model takes them.
        with_spin : bool
            Also return the spin-density coefficients (models with ``spin_density`` only).

        Returns
        -------
        Tensor (naux,), or (total, spin) Tensors (naux,) with ``with_spin``
            Coefficients in PySCF aux order, atoms in input order (structures concatenated).
        """
        if with_spin and self.spin_heads is None:
            raise ValueError("this model predicts no spin density (spin_density is off).")
        species = self.species(numbers).to(positions.device)
        if edges is None:
            edges = neighbor_list(positions, self.config.cutoff, batch)
        src, dst = edges
        vec = positions[dst] - positions[src]
        r = vec.norm(dim=1)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        radial = self.radial(r)
        x = torch.nn.functional.one_hot(species, len(self.elements)).to(positions.dtype)
        if self.config.takes_charge_and_spin:
            total = per_structure(charge, batch, len(species), positions.dtype).to(positions.device)
            twice_s = per_structure(spin, batch, len(species), positions.dtype).to(positions.device)
            atom_structure = batch if batch is not None else torch.zeros_like(species)
            inputs = {"charge": lambda: total[atom_structure],
                      "eeq": lambda: eeq_charges(numbers, positions, total, batch),
                      "spin": lambda: twice_s[atom_structure]}
            x = torch.cat([x, *(inputs[name]()[:, None] for name in self.global_inputs)], dim=1)
        x = self.embedding(x)
        for layer in self.layers:
            x = layer(x, sh, radial, src, dst)
        if self.charge_equilibration is not None:
            q = self.charge_equilibration(x[:, :self.num_scalars], species, positions, total, batch)
            x = torch.cat([x, q[:, None]], dim=1)
        offsets = self.coefficient_offsets(species)
        out = self._read_out(self.heads, x, species, offsets, raw, self.config.delta)
        if with_spin:
            return out, self._read_out(self.spin_heads, x, species, offsets, raw, False)
        return out

    def _read_out(self, heads, x, species, offsets, raw: bool, reference: bool):
        """Each element's head on its atoms' features, scaled (and added to the reference), as one flat vector."""
        out = x.new_zeros(int(offsets[-1]))
        for i, head in enumerate(heads):
            atoms = torch.nonzero(species == i, as_tuple=True)[0]
            if atoms.numel() == 0:
                continue
            to_pyscf = torch.as_tensor(self._to_pyscf[i], dtype=x.dtype, device=x.device)
            values = head(x[atoms]) @ to_pyscf  # row form of c_pyscf = M.T c_e3nn
            if not raw:
                values = values * getattr(self, f"scale_{i}")
                if reference:
                    values = values + getattr(self, f"reference_{i}")
            index = offsets[atoms][:, None] + torch.arange(self.nfunc[i], device=offsets.device)
            out = out.index_put((index.reshape(-1),), values.reshape(-1))
        return out

    def predict(self, numbers, positions_angstrom, charge: float = 0, spin: int = 0) -> np.ndarray:
        """Coefficients of one structure, float64 NumPy (naux,), PySCF aux order, no gradient.

        Parameters
        ----------
        numbers : array_like (n,) int
        positions_angstrom : array_like (n, 3), Å
        charge, spin : float, int
            Total charge (e) and 2S; used only by models that take them.
        """
        return _predict(self, numbers, positions_angstrom, charge, spin)

    def predict_spin(self, numbers, positions_angstrom, charge: float = 0, spin: int = 0):
        """Total and spin-density coefficients of one structure, two float64 arrays (naux,); see :meth:`predict`."""
        return _predict(self, numbers, positions_angstrom, charge, spin, with_spin=True)


class DensityEnsemble(torch.nn.Module):
    """Mean of several density models over the same elements and auxiliary basis.

    Averaging independently trained models lowers the variance part of the error; the mean of equivariant
    predictions is equivariant. Members may differ in architecture.

    Parameters
    ----------
    configs : sequence of ModelConfig
        One per member, all with the same ``elements`` and ``auxbasis``.
    """

    def __init__(self, configs):
        super().__init__()
        configs = list(configs)
        if len(configs) < 2:
            raise ValueError("an ensemble needs at least two members.")
        first = configs[0]
        for c in configs[1:]:
            if tuple(c.elements) != tuple(first.elements) or c.auxbasis != first.auxbasis:
                raise ValueError(f"ensemble members must share elements and auxbasis; got {first.elements} / "
                                 f"{first.auxbasis} and {c.elements} / {c.auxbasis}.")
        self.members = torch.nn.ModuleList(DensityModel(c) for c in configs)
        self.elements = self.members[0].elements
        self.auxbasis = first.auxbasis
        self.nfunc = self.members[0].nfunc

    @property
    def takes_charge_and_spin(self) -> bool:
        """Whether the total charge or 2S changes the prediction (of any member)."""
        return any(m.takes_charge_and_spin for m in self.members)

    @property
    def predicts_spin(self) -> bool:
        """Whether every member has spin-density heads."""
        return all(m.predicts_spin for m in self.members)

    def forward(self, numbers, positions, batch=None, charge=None, spin=None, with_spin=False):
        """Mean of the members' coefficients, (naux,) PySCF aux order (a pair with ``with_spin``); see
        :meth:`DensityModel.forward`."""
        outs = [m(numbers, positions, batch, charge=charge, spin=spin, with_spin=with_spin) for m in self.members]
        if with_spin:
            return tuple(sum(parts) / len(outs) for parts in zip(*outs))
        return sum(outs) / len(outs)

    def predict(self, numbers, positions_angstrom, charge: float = 0, spin: int = 0) -> np.ndarray:
        """Mean coefficients of one structure, float64 NumPy (naux,), PySCF aux order, no gradient; ``charge`` and
        ``spin`` as in :meth:`DensityModel.predict`."""
        return _predict(self, numbers, positions_angstrom, charge, spin)

    def predict_spin(self, numbers, positions_angstrom, charge: float = 0, spin: int = 0):
        """Mean total and spin-density coefficients, two float64 arrays (naux,)."""
        return _predict(self, numbers, positions_angstrom, charge, spin, with_spin=True)


def _predict(module, numbers, positions_angstrom, charge, spin, with_spin=False):
    dtype = next(module.parameters()).dtype
    with torch.no_grad():
        pos = torch.as_tensor(np.asarray(positions_angstrom, dtype=np.float64), dtype=dtype)
        out = module(torch.as_tensor(np.asarray(numbers), dtype=torch.long), pos,
                     charge=torch.tensor([float(charge)], dtype=dtype), spin=torch.tensor([float(spin)], dtype=dtype),
                     with_spin=with_spin)
    if with_spin:
        return tuple(part.double().numpy() for part in out)
    return out.double().numpy()


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
