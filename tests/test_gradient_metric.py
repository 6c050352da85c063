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


def test_open_shell_without_spin_density_and_wrong_length_are_refused():
    with pytest.raises(ValueError, match="spin-density coefficients"):
        gradient_metric([1, 1, 1], [[0, 0, 0], [0, 0, 0.9], [0, 0.9, 0]], np.zeros(30), AUX)
    with pytest.raises(ValueError, match="does not fit"):
        gradient_metric([1, 1, 1], [[0, 0, 0], [0, 0, 0.9], [0, 0.9, 0]], np.zeros(30), AUX, spin=2)
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
    from workflows.train.gradient_metric import channel_metric, label_channels

    _, mol, auxmol, coeffs, _ = water
    channels = label_channels(mol, auxmol, coeffs)
    occ, vir, gaps = channels[0].occ, channels[0].vir, channels[0].gaps
    assert gaps.shape == (occ.shape[1], vir.shape[1]) and gaps.min() > 0
    w = ov_three_center(mol, auxmol, occ, vir)
    jm = coulomb_metric(auxmol)
    dc = np.random.default_rng(3).normal(size=auxmol.nao) * 1e-3
    dF = dc @ w  # occupied-virtual block of ΔJ, (nocc·nvir,)
    v = w.T @ np.linalg.solve(jm, w)  # (ia|jb) through the auxiliary basis
    g = dF + 4 * v @ (dF / gaps.ravel())
    assert dc @ channel_metric([w], channels, jm) @ dc == pytest.approx(g @ g, rel=1e-8)
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
    with pytest.raises(ValueError, match="spin-density"):  # neutral NH4 is a radical: the charge is what is used
        gradient_metric([7, 1, 1, 1, 1], ammonium, np.zeros(len(m_cation)), AUX)


@pytest.fixture(scope="module")
def hydroxyl():
    """OH radical at UKS-PBE/def2-SVP: (mol, auxmol, total and spin-density coefficients)."""
    mol = gto.M(atom="O 0 0 0; H 0 0 0.97", basis="def2-svp", spin=1, verbose=0)
    dm_a, dm_b = dft.UKS(mol, xc="pbe").density_fit(auxbasis=AUX).run(conv_tol=1e-10).make_rdm1()
    return mol, make_auxmol(mol, AUX), fit_density(mol, dm_a + dm_b), fit_density(mol, dm_a - dm_b)


def test_open_shell_metric_is_the_mean_of_the_alpha_and_beta_blocks(hydroxyl):
    """A doublet's metric: ½ Σ_σ ‖ΔJ_ov^σ‖² in its α (5 occupied) and β (4 occupied) orbitals, and the screened one
    ½ Σ_σ ‖g_σ‖² with g_σ = ΔF_ov + 2 Σ_σ' V^σσ' E_σ'⁻¹ ΔF_ov^σ' built explicitly in the auxiliary basis."""
    from scfguess.density.auxbasis import coulomb_metric
    from workflows.train.gradient_metric import label_channels

    mol, auxmol, coeffs, spin_coeffs = hydroxyl
    channels = label_channels(mol, auxmol, coeffs, spin_coeffs=spin_coeffs)
    assert [ch.occ.shape[1] for ch in channels] == [5, 4]
    dc = np.random.default_rng(1).normal(scale=1e-2, size=auxmol.nao)
    d_j = coulomb_matrix(mol, auxmol, dc)
    blocks = [ch.occ.T @ d_j @ ch.vir for ch in channels]
    numbers, positions = [8, 1], [[0, 0, 0], [0, 0, 0.97]]
    bare = gradient_metric(numbers, positions, coeffs, AUX, spin=1, spin_coeffs=spin_coeffs)
    assert dc @ bare @ dc == pytest.approx(0.5 * sum(np.sum(b * b) for b in blocks), rel=1e-9)

    jm = coulomb_metric(auxmol)
    ws = [ov_three_center(mol, auxmol, ch.occ, ch.vir) for ch in channels]
    rotated = sum(w @ (b.ravel() / ch.gaps.ravel()) for w, b, ch in zip(ws, blocks, channels))  # Σ_σ' (P|jb) κ
    response = np.linalg.solve(jm, rotated)
    g = [b.ravel() + 2 * w.T @ response for w, b in zip(ws, blocks)]
    screened = gradient_metric(numbers, positions, coeffs, AUX, spin=1, spin_coeffs=spin_coeffs, screened=True)
    assert dc @ screened @ dc == pytest.approx(0.5 * sum(x @ x for x in g), rel=1e-8)


def test_a_closed_shell_as_two_equal_channels_gives_the_closed_shell_metric(water):
    """The open-shell formula reduces to the closed-shell one: water with a zero spin density, as α and β."""
    from scfguess.density.auxbasis import coulomb_metric
    from workflows.train.gradient_metric import channel_metric, label_channels

    _, mol, auxmol, coeffs, _ = water
    jm = coulomb_metric(auxmol)
    for spin_coeffs in (None, np.zeros_like(coeffs)):
        channels = label_channels(mol, auxmol, coeffs, spin_coeffs=spin_coeffs)
        ws = [ov_three_center(mol, auxmol, ch.occ, ch.vir) for ch in channels]
        if spin_coeffs is None:
            closed = channel_metric(ws, channels), channel_metric(ws, channels, jm)
        else:
            assert len(channels) == 2
            scale = np.abs(closed[1]).max()
            assert np.abs(channel_metric(ws, channels) - closed[0]).max() < 1e-8 * np.abs(closed[0]).max()
            assert np.abs(channel_metric(ws, channels, jm) - closed[1]).max() < 1e-8 * scale


def test_open_shell_structures_train_through_the_gradient_metric(hydroxyl, tmp_path):
    """The training metrics cover radicals: a stored doublet gets the UKS metric of its label's spin density."""
    from workflows.train.metrics import gradient_metrics

    mol, auxmol, coeffs, spin_coeffs = hydroxyl
    structure = {"structure_id": "oh", "numbers": np.array([8, 1]), "positions": np.array([[0, 0, 0], [0, 0, 0.97]]),
                 "charge": 0, "spin": 1, "coeffs": coeffs.astype(np.float32),
                 "spin_coeffs": spin_coeffs.astype(np.float32)}
    metric = gradient_metrics(AUX, 100.0, tmp_path)(structure)
    assert (tmp_path / "oh.npy").exists() and metric.shape == (auxmol.nao, auxmol.nao)
    direct = gradient_metric([8, 1], structure["positions"], structure["coeffs"], AUX, spin=1,
                             spin_coeffs=structure["spin_coeffs"])
    assert np.allclose(metric, direct, rtol=1e-5, atol=1e-7 * np.abs(direct).max())
