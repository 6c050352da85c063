"""The orbital-gradient training metric: its quadratic form is the occupied-virtual norm of ΔJ, and it is invariant."""

import numpy as np
import pytest
from ase.build import molecule
from pyscf import dft, gto

from scfguess.density.auxbasis import make_auxmol
from scfguess.density.fitting import coulomb_matrix, fit_density
from workflows.train.gradient_metric import gradient_metric, label_orbitals, ov_three_center

AUX = "def2-universal-jfit"


@pytest.fixture(scope="module")
def water():
    atoms = molecule("H2O")
    mol = gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist())), basis="def2-svp", verbose=0)
    mf = dft.RKS(mol, xc="pbe").density_fit(auxbasis=AUX).run(conv_tol=1e-10)
    return atoms, mol, make_auxmol(mol, AUX), fit_density(mol, mf.make_rdm1()), mf


def test_quadratic_form_is_the_occupied_virtual_norm_of_the_coulomb_error(water):
    _, mol, auxmol, coeffs, _ = water
    occ, vir = label_orbitals(mol, auxmol, coeffs)
    w = ov_three_center(mol, auxmol, occ, vir)
    metric = w @ w.T
    err = np.random.default_rng(0).normal(scale=1e-2, size=auxmol.nao)
    expected = np.linalg.norm(occ.T @ coulomb_matrix(mol, auxmol, err) @ vir) ** 2
    assert err @ metric @ err == pytest.approx(expected, rel=1e-10)
    assert np.allclose(metric, metric.T) and np.linalg.eigvalsh(metric).min() > -1e-10 * metric.max()


def test_label_orbitals_of_a_converged_density_are_the_scf_orbitals(water):
    _, mol, auxmol, coeffs, mf = water
    occ, _ = label_orbitals(mol, auxmol, coeffs, grids_level=3)
    s = mf.get_ovlp()
    assert np.allclose(occ.T @ s @ occ, np.eye(occ.shape[1]), atol=1e-10)
    # same occupied space as the SCF (the fitted density and a coarser grid move it only slightly)
    projector = mf.mo_coeff[:, mf.mo_occ > 0]
    overlap = np.linalg.svd(projector.T @ s @ occ, compute_uv=False)
    assert overlap.min() > 0.999


def test_metric_is_invariant_under_rotation_and_translation(water):
    atoms, _, _, coeffs, _ = water
    from scipy.linalg import block_diag
    from scipy.spatial.transform import Rotation

    from scfguess.model.irreps import pyscf_rotation, shell_angular_momenta

    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    moved = atoms.positions @ rot.T + np.array([0.5, -2.0, 1.0])
    d = block_diag(*[pyscf_rotation(shell_angular_momenta(s, AUX), rot) for s in atoms.get_chemical_symbols()])
    m0 = gradient_metric(atoms.numbers, atoms.positions, coeffs, AUX)
    m1 = gradient_metric(atoms.numbers, moved, d @ coeffs, AUX)
    scale = np.abs(m0).max()
    # the V_xc grid is fixed to the lab frame, which moves the metric by ~1e-5 (relative)
    assert np.abs(d @ m0 @ d.T - m1).max() < 1e-4 * scale
    assert np.abs(m0 - m1).max() > 1e-2 * scale  # the rotation does change the metric


def test_open_shell_and_wrong_length_are_refused():
    with pytest.raises(ValueError, match="closed-shell"):
        gradient_metric([1, 1, 1], [[0, 0, 0], [0, 0, 0.9], [0, 0.9, 0]], np.zeros(30), AUX)
    with pytest.raises(ValueError, match="auxiliary functions"):
        gradient_metric([1, 1], [[0, 0, 0], [0, 0, 0.74]], np.zeros(3), AUX)


def test_error_split_isolates_the_coulomb_and_xc_parts():
    """A model that predicts the label exactly has no error in either part; a minao-level density's error is
    mostly in its Coulomb potential, and each mixture moves the guess."""
    from pyscf import scf

    from stub_models import FixedModel, MinaoModel
    from workflows.checks.error_split import split_guess_error

    atoms = molecule("H2O")
    mol = gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist())), basis="def2-svp", verbose=0)
    label = fit_density(mol, scf.RHF(mol).run().make_rdm1())  # a converged density standing in for a label
    structure = {"structure_id": "water", "numbers": atoms.numbers, "positions": atoms.positions, "coeffs": label}
    exact = split_guess_error(FixedModel(label), [structure])["per_structure"]["water"]
    assert exact["predicted_bare"] == exact["predicted_screened"] == 0.0
    assert exact["model"] == pytest.approx(exact["label"], rel=1e-8)
    assert exact["j_label"] == pytest.approx(exact["label"], rel=1e-8)
    assert exact["xc_label"] == pytest.approx(exact["label"], rel=1e-8)
    result = split_guess_error(MinaoModel(), [structure], by_l=True)
    minao = result["per_structure"]["water"]
    assert minao["label"] == pytest.approx(exact["label"], rel=1e-8)
    # each projection or one-l swap moves the guess, and none alone reaches the label
    for variant in ("populations", "dipoles", "l0_label", "l1_label", "l2up_label"):
        assert minao[variant] != pytest.approx(minao["model"], rel=1e-6) and minao[variant] > minao["label"]
    errors = result["moment_errors"]["water"]
    assert errors["population_max"] > 0.01 and errors["dipole_rms"] > 0
    assert minao["model"] > 5 * minao["label"]
    assert minao["j_label"] < minao["model"] / 3
    assert minao["xc_label"] != pytest.approx(minao["model"], rel=1e-3)
    assert minao["predicted_screened"] > minao["predicted_bare"] > 0  # the Coulomb response amplifies


def test_spin_error_split_of_an_open_shell():
    """OH radical: a model that predicts the label's total and spin density scores the oracle in every mixture that
    keeps both; dropping the spin density (ρ_α = ρ_β = ρ/2) moves the guess away from it."""
    from pyscf import scf

    from stub_models import FixedModel
    from workflows.checks.error_split import split_spin_error

    positions = [[0, 0, 0], [0, 0, 0.97]]
    mol = gto.M(atom=[("O", positions[0]), ("H", positions[1])], basis="def2-svp", spin=1, verbose=0)
    dm_a, dm_b = scf.UHF(mol).run().make_rdm1()
    label, spin_label = fit_density(mol, dm_a + dm_b), fit_density(mol, dm_a - dm_b)

    class SpinModel(FixedModel):
        predicts_spin = True

        def predict_spin(self, numbers, positions_angstrom):
            return self.coeffs.copy(), spin_label.copy()

    structure = {"structure_id": "oh", "numbers": [8, 1], "positions": positions, "charge": 0, "spin": 1,
                 "coeffs": label, "spin_coeffs": spin_label}
    row = split_spin_error(SpinModel(label), [structure])["per_structure"]["oh"]
    for variant in ("model", "spin_label", "density_label"):
        assert row[variant] == pytest.approx(row["label"], rel=1e-8)
    assert row["spin_none"] > 2 * row["label"]
    with pytest.raises(ValueError, match="predicts no spin density"):
        split_spin_error(FixedModel(label), [structure])


def test_screened_metric_is_the_response_amplified_ov_error(water):
    """Δcᵀ Rᵀ M R Δc equals ‖(1 + 4 V E⁻¹) ΔF_ov‖² with V_ia,jb = (ia|jb) built explicitly in the auxiliary basis."""
    from scfguess.density.auxbasis import coulomb_metric
    from workflows.train.gradient_metric import label_orbitals_and_gaps, screened_ov_metric

    _, mol, auxmol, coeffs, _ = water
    occ, vir, gaps = label_orbitals_and_gaps(mol, auxmol, coeffs)
    assert gaps.shape == (occ.shape[1], vir.shape[1]) and gaps.min() > 0
    w = ov_three_center(mol, auxmol, occ, vir)
    jm = coulomb_metric(auxmol)
    dc = np.random.default_rng(3).normal(size=auxmol.nao) * 1e-3
    dF = dc @ w  # occupied-virtual block of ΔJ, (nocc·nvir,)
    v = w.T @ np.linalg.solve(jm, w)  # (ia|jb) through the auxiliary basis
    g = dF + 4 * v @ (dF / gaps.ravel())
    assert dc @ screened_ov_metric(w, gaps, jm) @ dc == pytest.approx(g @ g, rel=1e-8)
    assert dc @ (w @ w.T) @ dc == pytest.approx(dF @ dF, rel=1e-10)


def test_charged_and_iodine_structures_get_their_electron_count():
    """The metric's orbitals hold the structure's electrons: a cation's charge is applied, and iodine gets the def2
    ECP (26 electrons for HI at def2-SVP), so the occupied block has the right size."""
    from scfguess.density.fitting import fit_density as fit

    def metric_rank(numbers, positions, charge):
        symbols = ["H" if z == 1 else gto.mole._symbol(int(z)) for z in numbers]
        mol = gto.M(atom=list(zip(symbols, positions)), basis="def2-svp", charge=charge, verbose=0,
                    ecp={"I": "def2-svp"} if 53 in numbers else {})
        coeffs = fit(mol, dft.RKS(mol, xc="pbe").get_init_guess(key="minao"))
        m = gradient_metric(numbers, positions, coeffs, AUX, charge=charge)
        occ, vir = label_orbitals(mol, make_auxmol(mol, AUX), coeffs)
        return m, occ.shape[1], mol.nelectron

    m, nocc, nelectron = metric_rank([53, 1], [[0, 0, 0], [0, 0, 1.61]], 0)
    assert nelectron == 26 and nocc == 13 and np.isfinite(m).all()
    ammonium = [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]
    m_cation, nocc, nelectron = metric_rank([7, 1, 1, 1, 1], ammonium, 1)
    assert nelectron == 10 and nocc == 5
    with pytest.raises(ValueError, match="closed-shell"):  # neutral NH4 is a radical: the charge is what is used
        gradient_metric([7, 1, 1, 1, 1], ammonium, np.zeros(len(m_cation)), AUX)


def test_open_shell_structures_are_left_out_of_the_gradient_losses():
    import torch

    from workflows.train.losses import _quadratic
    from workflows.train.metrics import MetricCache, closed_shell

    radical = {"structure_id": "r", "numbers": np.array([6, 1, 1, 1]), "charge": 0, "spin": 1,
               "coeffs": np.zeros(2)}
    cation = {"structure_id": "c", "numbers": np.array([7, 1, 1, 1, 1]), "charge": 1, "spin": 0,
              "coeffs": np.zeros(2)}
    assert not closed_shell(radical) and closed_shell(cation)
    metric = MetricCache(lambda s: np.eye(2), 1.0, applies=closed_shell)
    err = torch.ones(4)
    bounds = np.array([0, 2, 4])
    assert float(_quadratic(err, bounds, [radical, cation], metric)) == 2.0
    assert float(_quadratic(err, bounds, [cation, cation], metric)) == 4.0
