"""The shipped default model: loads, predicts fast enough, and its guess converges to the minao energy."""

import time
from pathlib import Path

import pytest
from pyscf import dft

import scfguess
from scfguess import init_guess
from scfguess.model.registry import load_model

from conftest import ETHANOL, WATER, make_mol


@pytest.fixture(scope="module")
def shipped():
    try:
        return load_model()
    except RuntimeError as err:  # pragma: no cover - a checkout always ships models/DEFAULT
        pytest.fail(f"the default model must be installed: {err}")


def _converge(mol, dm0=None):
    mf = dft.RKS(mol, xc="pbe").density_fit()
    mf.conv_tol = 1e-9
    mf.kernel(dm0=dm0)
    assert mf.converged
    return mf


def test_shipped_model_metadata(shipped):
    meta = shipped.metadata
    assert meta["format_version"] >= 1 and meta["sha256"] == shipped.sha256
    assert {"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"} <= set(shipped.elements)
    assert shipped.takes_charge_and_spin and "charge -1 to +1" in meta["domain"]
    assert meta["training_command"]
    trained = meta.get("member_models", [meta])  # an ensemble records the training of each member
    assert trained and all(m["training"]["n_train"] > 0 for m in trained)


def test_aspirin_from_the_ml_guess_takes_fewer_cycles_than_minao(shipped):
    """The user's path (the hook on a density-fitted RKS, PySCF's default settings) on the bundled aspirin."""
    from scfguess.cli import demo_structure
    from scfguess.scf import ScfSettings, build_scf

    structure = demo_structure()
    ref = build_scf(structure, "def2-svp", "pbe", ScfSettings())
    ref.kernel()
    mf = scfguess.apply(build_scf(structure, "def2-svp", "pbe", ScfSettings()), model=shipped, fallback=None)
    mf.kernel()
    assert ref.converged and mf.converged and mf.scfguess_info["guess"] == "ml"
    assert abs(mf.e_tot - ref.e_tot) < 1e-7
    assert mf.cycles < ref.cycles


def test_water_guess_converges_to_minao_energy(shipped):
    mol = make_mol(WATER)
    ref = _converge(mol)
    mf = dft.RKS(mol, xc="pbe").density_fit()
    guess = _converge(mol, init_guess(mf, model=shipped))
    assert abs(guess.e_tot - ref.e_tot) < 1e-7
    assert guess.cycles <= ref.cycles + 1


@pytest.mark.slow
def test_ethanol_guess_converges_to_minao_energy(shipped):
    mol = make_mol(ETHANOL)
    ref = _converge(mol)
    mf = dft.RKS(mol, xc="pbe").density_fit()
    guess = _converge(mol, init_guess(mf, model=shipped))
    assert abs(guess.e_tot - ref.e_tot) < 1e-7
    assert guess.cycles < ref.cycles


@pytest.mark.slow
def test_sixty_atoms_predict_under_a_fifth_of_a_second(shipped):
    from scfbench.nci import embed, evaluation_molecules

    atoms = embed(evaluation_molecules(min_atoms=60, max_atoms=60)[0].smiles)
    assert len(atoms) == 60
    shipped.predict(atoms.numbers, atoms.positions)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        shipped.predict(atoms.numbers, atoms.positions)
        times.append(time.perf_counter() - t0)
    assert min(times) < 0.2


def test_shipped_model_beats_the_atomic_references_on_held_out_molecules(shipped):
    """On validation molecules of the first shard the model's Coulomb error is far below the references' alone."""
    from workflows.checks.evaluate import evaluate_models

    shard = Path(__file__).resolve().parents[1] / "data" / "shards" / "shard-00000.h5"
    result = evaluate_models([shipped.name], shards=(str(shard),))
    model, baseline = result[shipped.name], result["reference superposition only"]
    assert result["structures"] >= 1
    assert model["coulomb_per_atom"] < 0.1 * baseline["coulomb_per_atom"]
    assert model["rmse"] < 0.5 * baseline["rmse"]


def test_iodobenzene_prediction_counts_the_electrons_the_ecp_leaves(shipped):
    """The default model on iodobenzene at def2-SVP: iodine's def2 ECP replaces 28 core electrons, so
    the SCF has 66 electrons; the raw prediction (no charge projection) integrates to that count within 0.5 e."""
    from scfbench.nci import embed
    from scfguess.density.auxbasis import make_auxmol
    from scfguess.density.electrons import electron_count
    from scfguess.structures import atomic_numbers, from_atoms, to_mole

    mol = to_mole(from_atoms(embed("Ic1ccccc1"), "iodobenzene"), "def2-svp")
    assert "I" in shipped.elements and mol.nelectron == 6 * 6 + 5 + 53 - 28
    coeffs = shipped.predict(atomic_numbers(mol), mol.atom_coords(unit="Angstrom"))
    assert electron_count(make_auxmol(mol, shipped.auxbasis), coeffs) == pytest.approx(mol.nelectron, abs=0.5)
