"""Equivariance of the density model against PySCF's auxiliary-function transformation, and model basics."""

import numpy as np
import pytest
import torch
from ase.build import molecule
from pyscf import gto, scf
from scipy.spatial.transform import Rotation

from scfguess.errors import UnsupportedElementError
from scfguess.density.fitting import fit_density
from scfguess.model.irreps import pyscf_rotation, shell_angular_momenta
from scfguess.density.reference import atomic_reference_coefficients
from scfguess.model.network import DensityModel, ModelConfig, count_parameters

SMALL = ModelConfig(hidden_muls=(8, 4, 3, 2, 2), num_layers=2, radial_hidden=16)
#: The same with every global-charge piece: total charge and EEQ charges as inputs, learned charge equilibration.
CHARGED = ModelConfig(hidden_muls=(8, 4, 3, 2, 2), num_layers=2, radial_hidden=16, global_inputs=("charge", "eeq"),
                      charge_equilibration=True)


def _aux_rotation(symbols, rot):
    """Block-diagonal PySCF-order transformation of a whole structure's coefficients."""
    blocks = [pyscf_rotation(shell_angular_momenta(s), rot) for s in symbols]
    n = sum(b.shape[0] for b in blocks)
    out = np.zeros((n, n))
    start = 0
    for b in blocks:
        out[start:start + len(b), start:start + len(b)] = b
        start += len(b)
    return out


def _permute_coeffs(symbols, coeffs, perm):
    sizes = [sum(2 * l + 1 for l in shell_angular_momenta(s)) for s in symbols]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return np.concatenate([coeffs[starts[i]:starts[i + 1]] for i in perm])


@pytest.fixture(scope="module")
def structure():
    atoms = molecule("CH3CH2OH")
    atoms[3].symbol = "Cl"  # H C N O F P S Cl mix: give the check an l-rich heavy element too
    atoms[8].symbol = "F"
    return atoms


@pytest.fixture(scope="module")
def transform():
    rng = np.random.default_rng(11)
    rot = Rotation.random(random_state=5).as_matrix()
    return {"rot": rot, "refl": -rot, "shift": rng.normal(size=3) * 2.0}


@pytest.fixture(scope="module", params=["local", "charged"])
def model64(request):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        model = DensityModel(SMALL if request.param == "local" else CHARGED)
        rng = np.random.default_rng(0)
        for s in model.elements:
            nfunc = len(model.reference(s))
            model.set_reference(s, rng.normal(size=nfunc))
            ls = shell_angular_momenta(s)
            model.set_scales(s, np.repeat(rng.uniform(0.5, 2.0, len(ls)), [2 * l + 1 for l in ls]))
    finally:
        torch.set_default_dtype(previous)
    return model


def _minao_fit(symbols, positions):
    mol = gto.M(atom=list(zip(symbols, positions)), basis="sto-3g", spin=None, verbose=0)
    mol.spin = mol.nelectron % 2
    mol.build()
    return fit_density(mol, scf.hf.init_guess_by_minao(mol))


@pytest.mark.parametrize("kind", ["rot", "refl"])
def test_aux_transformation_matches_pyscf_fit(structure, transform, kind):
    """Fitted minao densities of a molecule and its rotated/reflected, shifted copy differ by exactly D(R)."""
    symbols = structure.get_chemical_symbols()
    pos = structure.positions
    rot = transform[kind]
    c0 = _minao_fit(symbols, pos)
    c1 = _minao_fit(symbols, pos @ rot.T + transform["shift"])
    d = _aux_rotation(symbols, rot)
    np.testing.assert_allclose(c1, d @ c0, atol=1e-8 * np.abs(c0).max())


@pytest.mark.parametrize("kind", ["rot", "refl"])
def test_model_is_equivariant_in_pyscf_order(model64, structure, transform, kind):
    symbols = structure.get_chemical_symbols()
    numbers = structure.numbers
    pos = structure.positions
    rot = transform[kind]
    perm = np.random.default_rng(2).permutation(len(numbers))
    c0 = model64.predict(numbers, pos, charge=-1)
    c1 = model64.predict(numbers[perm], (pos @ rot.T + transform["shift"])[perm], charge=-1)
    expected = _permute_coeffs(symbols, _aux_rotation(symbols, rot) @ c0, perm)
    assert np.abs(c0).max() > 0.1
    np.testing.assert_allclose(c1, expected, atol=1e-9 * np.abs(c0).max())


def test_only_a_charge_aware_model_sees_the_total_charge(structure):
    torch.manual_seed(0)
    local, charged = DensityModel(SMALL), DensityModel(CHARGED)
    args = structure.numbers, structure.positions
    np.testing.assert_array_equal(local.predict(*args, charge=1), local.predict(*args, charge=0))
    assert np.abs(charged.predict(*args, charge=1) - charged.predict(*args, charge=0)).max() > 1e-4
    assert not local.takes_charge_and_spin and charged.takes_charge_and_spin


def test_the_guess_pipeline_passes_the_molecule_charge():
    from scfguess.guess import predict_coefficients

    torch.manual_seed(0)
    model = DensityModel(CHARGED)
    water = "O 0 0 0.12; H 0 0.76 -0.47; H 0 -0.76 -0.47"
    neutral = predict_coefficients(gto.M(atom=water, basis="sto-3g", verbose=0), model).coeffs
    cation = predict_coefficients(gto.M(atom=water, basis="sto-3g", charge=1, spin=1, verbose=0), model).coeffs
    np.testing.assert_allclose(neutral, model.predict([8, 1, 1], [[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]]),
                               rtol=1e-6, atol=1e-7)
    assert np.abs(cation - neutral).max() > 1e-4


SPIN = ModelConfig(hidden_muls=(8, 4, 3, 2, 2), num_layers=2, radial_hidden=16, global_inputs=("charge", "spin"),
                   spin_density=True)


def test_spin_density_heads_are_equivariant_and_reach_the_converter(structure, transform):
    """The spin output rotates like the total density; the guess pipeline predicts it for open shells only and
    the converter then gives α and β different matrices."""
    from pyscf import dft

    from scfguess.guess import ml_guess, predict_coefficients

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        model = DensityModel(SPIN)
    finally:
        torch.set_default_dtype(previous)
    symbols, numbers, pos = structure.get_chemical_symbols(), structure.numbers, structure.positions
    rot = transform["rot"]
    total0, spin0 = model.predict_spin(numbers, pos, charge=0, spin=1)
    total1, spin1 = model.predict_spin(numbers, pos @ rot.T + transform["shift"], charge=0, spin=1)
    np.testing.assert_allclose(spin1, _aux_rotation(symbols, rot) @ spin0, atol=1e-9 * np.abs(spin0).max())
    np.testing.assert_allclose(total0, model.predict(numbers, pos, charge=0, spin=1))
    assert np.abs(spin0).max() > 1e-3 and model.predicts_spin and not DensityModel(SMALL).predicts_spin

    water = "O 0 0 0.12; H 0 0.76 -0.47; H 0 -0.76 -0.47"
    cation = gto.M(atom=water, basis="sto-3g", charge=1, spin=1, verbose=0)
    assert predict_coefficients(cation, model).spin_coeffs is not None
    assert predict_coefficients(gto.M(atom=water, basis="sto-3g", verbose=0), model).spin_coeffs is None
    mf = dft.UKS(cation, xc="pbe")
    mf.grids.level = 0
    dm = ml_guess(mf, model.float()).dm
    assert dm.shape == (2, cation.nao, cation.nao) and np.abs(dm[0] - dm[1]).max() > 1e-3
    with pytest.raises(ValueError, match="predicts no spin density"):
        DensityModel(SMALL)(torch.tensor(numbers), torch.tensor(pos, dtype=torch.float32), with_spin=True)


def test_batched_structures_of_different_charge_match_single_predictions():
    """EEQ inputs and the charge equilibration are solved per structure: a batch changes nothing."""
    torch.manual_seed(0)
    model = DensityModel(CHARGED)
    water, ammonia = molecule("H2O"), molecule("NH3")
    ammonia.positions += 20.0
    numbers = torch.tensor(np.concatenate([water.numbers, ammonia.numbers]))
    positions = torch.tensor(np.concatenate([water.positions, ammonia.positions]), dtype=torch.float32)
    batch = torch.tensor([0] * 3 + [1] * 4)
    with torch.no_grad():
        both = model(numbers, positions, batch, charge=torch.tensor([-1.0, 1.0]))
    single = np.concatenate([model.predict(water.numbers, water.positions, charge=-1),
                             model.predict(ammonia.numbers, ammonia.positions, charge=1)])
    np.testing.assert_allclose(both.numpy(), single, rtol=1e-4, atol=1e-5)


def test_charge_equilibration_conserves_each_total_charge_and_learns():
    from scfguess.model.charges import ChargeEquilibration, eeq_charges

    torch.manual_seed(0)
    layer = ChargeEquilibration([1, 8], num_features=4).double()
    features = torch.randn(5, 4, dtype=torch.float64)
    species = torch.tensor([1, 0, 0, 1, 0])
    positions = torch.tensor([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [5, 0, 0], [5.96, 0, 0]],
                             dtype=torch.float64)
    batch = torch.tensor([0, 0, 0, 1, 1])
    total = torch.tensor([-1.0, 0.0], dtype=torch.float64)
    q = layer(features, species, positions, total, batch)
    np.testing.assert_allclose([q[:3].sum().item(), q[3:].sum().item()], [-1.0, 0.0], atol=1e-12)
    q.pow(2).sum().backward()
    assert layer.electronegativity[0].weight.grad.abs().sum() > 0
    eeq = eeq_charges(torch.tensor([8, 1, 1, 8, 1]), positions, total, batch)
    np.testing.assert_allclose([eeq[:3].sum().item(), eeq[3:].sum().item()], [-1.0, 0.0], atol=1e-10)
    assert eeq[0] < 0 < eeq[1]


def test_unknown_charge_input_is_named():
    with pytest.raises(ValueError, match="unknown global input 'mulliken'; choose from charge, eeq, spin"):
        ModelConfig.from_dict({"global_inputs": ["mulliken"]})


def test_output_size_and_float32(structure):
    torch.manual_seed(0)
    model = DensityModel(SMALL)
    out = model.predict(structure.numbers, structure.positions)
    nfunc = sum(sum(2 * l + 1 for l in shell_angular_momenta(s)) for s in structure.get_chemical_symbols())
    assert out.shape == (nfunc,) and out.dtype == np.float64
    assert next(model.parameters()).dtype == torch.float32
    assert count_parameters(model) > 1000


def test_unsupported_element_is_named():
    model = DensityModel(SMALL)
    with pytest.raises(UnsupportedElementError) as err:
        model.predict([6, 14], [[0, 0, 0], [1.8, 0, 0]])
    assert err.value.elements == ["Si"]


def test_atomic_reference_is_spherical_and_counts_electrons():
    from scfguess.density.auxbasis import aux_integrals, make_auxmol

    c = atomic_reference_coefficients("O")
    mol = gto.M(atom="O 0 0 0", basis="def2-svp", verbose=0)
    assert np.count_nonzero(c) <= 6
    assert abs(aux_integrals(make_auxmol(mol)) @ c - 8.0) < 0.05  # the Coulomb fit keeps N to ~1e-2


@pytest.mark.parametrize("symbol, valence", [("Br", 35), ("I", 25)])
def test_heavy_halogen_references_hold_their_electrons(symbol, valence):
    """Iodine's reference is taken under its def2 ECP (25 valence electrons); PySCF's minao projection would hold
    only 23.3 of them, so an ECP atom's reference must come from the atomic HF density."""
    from scfguess.density.auxbasis import aux_integrals, make_auxmol

    c = atomic_reference_coefficients(symbol)
    mol = gto.M(atom=f"{symbol} 0 0 0", basis="def2-svp", ecp={"I": "def2-svp"}, spin=1, verbose=0)
    assert abs(aux_integrals(make_auxmol(mol)) @ c - valence) < 0.05
    assert np.all(c[:3] > 0)  # no oscillating fit (the minao one starts 15.1, 15.8, -6.4)
