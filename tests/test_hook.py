"""The PySCF hook: scfguess.apply and scfguess.init_guess_by_ml, with PySCF's add-ons and on bad input."""

import json
import shutil
import warnings

import numpy as np
import pytest
from pyscf import dft, gto

import scfguess
from scfguess import hook
from scfguess import scf as scf_module
from scfguess.model import registry
from scfguess.errors import ModelNotInstalledError, UnsupportedElementError
from stub_models import FixedModel, MinaoModel, save_tiny_model
from conftest import ETHANOL, WATER

FAST = {"basis": "sto-3g"}


def water(basis="sto-3g", **kwargs):
    return gto.M(atom=WATER, basis=basis, verbose=0, **kwargs)


def rks(mol, xc="pbe"):
    mf = dft.RKS(mol, xc=xc)
    mf.grids.level = 1
    mf.conv_tol = 1e-9
    return mf


@pytest.fixture(scope="module")
def water_minao():
    """Plain PySCF run (minao guess) of RI-J PBE/sto-3g water: the energy every hooked run must reach."""
    mf = rks(water()).density_fit()
    mf.kernel()
    assert mf.converged
    return mf


@pytest.fixture(scope="module")
def oracle_model(water_minao):
    """A 'model' predicting the fitted converged density of water (a perfect model)."""
    return FixedModel(scfguess.fit_density(water_minao.mol, water_minao.make_rdm1()))


def test_apply_uses_ml_guess_records_info_and_saves_cycles(water_minao, oracle_model):
    mf = scfguess.apply(rks(water()).density_fit(), model=oracle_model)
    assert mf.init_guess == "ml"
    assert mf.run() is mf
    info = mf.scfguess_info
    assert info["guess"] == "ml" and info["fallback_reason"] is None
    assert info["model"] == "fixed" and info["model_sha256"] == "0" * 64
    assert info["load_seconds"] >= 0 and info["inference_seconds"] >= 0 and info["conversion_seconds"] > 0
    assert mf.converged and mf.e_tot == pytest.approx(water_minao.e_tot, abs=1e-7)
    assert mf.cycles < water_minao.cycles


def test_dm0_wins_and_other_keys_are_pyscf_guesses(water_minao):
    model = MinaoModel()
    mf = scfguess.apply(rks(water()).density_fit(), model=model)
    mf.kernel(dm0=water_minao.make_rdm1())
    assert model.calls == 0 and mf.scfguess_info == {} and mf.cycles <= 2
    for key in ("atom", "minao", "1e"):
        np.testing.assert_allclose(mf.get_init_guess(key=key), rks(water()).get_init_guess(key=key))
    mf.init_guess = "huckel"
    mf.kernel()
    assert model.calls == 0 and mf.e_tot == pytest.approx(water_minao.e_tot, abs=1e-6)


def test_hook_survives_density_fit_pcm_and_scanner_in_either_order(water_minao):
    model = MinaoModel()
    mf = scfguess.apply(rks(water()), model=model).density_fit()  # apply first
    plain_df = rks(water()).density_fit()
    np.testing.assert_allclose(mf.get_init_guess(), scfguess.init_guess(plain_df, model=model), atol=1e-10)
    assert model.calls == 2
    scanner = scfguess.apply(rks(water()).density_fit(), model=model).as_scanner()  # apply before the scanner
    mol = water()
    assert scanner(mol) == pytest.approx(water_minao.e_tot, abs=1e-7) and model.calls == 3
    moved = mol.set_geom_(mol.atom_coords() * 1.01, unit="Bohr", inplace=False)
    scanner(moved)  # later geometries: PySCF reuses the previous density matrix
    assert model.calls == 3 and scanner.converged
    solvated = scfguess.apply(rks(water()), model=model).PCM()
    solvated.kernel()
    assert solvated.converged and solvated.scfguess_info["guess"] == "ml" and model.calls == 4


def test_guess_for_another_molecule_uses_that_molecule():
    model = MinaoModel()
    mf = scfguess.apply(rks(water()), model=model)
    ethanol = gto.M(atom=ETHANOL, basis="sto-3g", verbose=0)
    dm = mf.get_init_guess(ethanol, "ml")
    assert dm.shape == (ethanol.nao, ethanol.nao)
    assert np.trace(dm @ ethanol.intor("int1e_ovlp")) == pytest.approx(26, abs=1e-8)


def test_undo_and_to_gpu_drop_the_hook(monkeypatch):
    mf = scfguess.apply(rks(water()).density_fit(), model=MinaoModel(), fallback="atom")
    plain = mf.undo_ml_guess()
    assert not isinstance(plain, hook._MLGuess) and plain.init_guess == "atom"
    assert isinstance(plain, dft.rks.RKS) and plain.with_df is mf.with_df and type(plain).__name__ == "DFRKS"
    from pyscf.df.df_jk import _DFHF

    monkeypatch.setattr(_DFHF, "to_gpu", lambda self: self)  # gpu4pyscf is not installed
    assert not isinstance(mf.to_gpu(), hook._MLGuess)


def test_gradient_scanner_as_driven_by_geomopt(water_minao):
    model = MinaoModel()
    grad_scanner = scfguess.apply(rks(water()).density_fit(), model=model).nuc_grad_method().as_scanner()
    energy, grad = grad_scanner(water())
    assert energy == pytest.approx(water_minao.e_tot, abs=1e-7) and grad.shape == (3, 3) and model.calls == 1


def test_geomopt_with_geometric():
    from pyscf.geomopt.geometric_solver import optimize

    model = MinaoModel()
    optimize(scfguess.apply(rks(water()).density_fit(), model=model), maxsteps=3)
    assert model.calls == 1


def test_dispersion_is_kept(water_minao):
    mf = scfguess.apply(rks(water()).density_fit(), model=MinaoModel())
    mf.disp = "d3bj"
    mf.kernel()
    assert mf.scfguess_info["guess"] == "ml" and mf.e_tot != pytest.approx(water_minao.e_tot, abs=1e-6)


@pytest.mark.parametrize("kind", ["UKS", "ROKS"])
def test_open_shell_guess_has_the_spin_layout_of_the_object(kind):
    mol = gto.M(atom="O 0 0 0; H 0 0 0.97", basis="sto-3g", spin=1, verbose=0)
    mf = scfguess.apply(getattr(dft, kind)(mol, xc="pbe"), model=MinaoModel())
    mf.grids.level = 1
    dm = mf.get_init_guess()
    assert dm.shape == (2, mol.nao, mol.nao)
    s = mol.intor("int1e_ovlp")
    assert [np.trace(d @ s) for d in dm] == pytest.approx([5, 4], abs=1e-8)
    mf.kernel()
    assert mf.converged and mf.scfguess_info["guess"] == "ml"


def test_init_guess_by_ml_function_style():
    mol = water("def2-svp")
    dm = scfguess.init_guess_by_ml(mol, model=MinaoModel())
    assert dm.shape == (mol.nao, mol.nao) and np.allclose(dm, dm.T)
    assert np.trace(dm @ mol.intor("int1e_ovlp")) == pytest.approx(10, abs=1e-8)
    cation = water("def2-svp", charge=1, spin=1)
    dm = scfguess.init_guess_by_ml(cation, xc="b3lyp", model=MinaoModel())
    assert dm.shape == (2, mol.nao, mol.nao)
    with pytest.raises(ValueError, match="unknown functional 'nonsense'"):
        scfguess.init_guess_by_ml(mol, xc="nonsense", model=MinaoModel())


# ---------------------------------------------------------------- bad input: warning + fallback, or raise


def fallback_case(model, match, fallback="minao"):
    """The hooked object warns and returns exactly PySCF's ``fallback`` guess."""
    mf = scfguess.apply(rks(water()).density_fit(), model=model, fallback=fallback)
    with pytest.warns(UserWarning, match=match):
        dm = mf.get_init_guess()
    np.testing.assert_array_equal(dm, rks(water()).density_fit().get_init_guess(key=fallback))
    info = mf.scfguess_info
    assert info["guess"] == fallback and info["fallback_reason"] and info["model_sha256"] is None
    return mf


def test_element_the_model_does_not_cover(water_minao):
    mf = scfguess.apply(rks(water()).density_fit(), model=MinaoModel(elements=("H",)))
    with pytest.warns(UserWarning, match="element.s. O not covered"):
        mf.kernel()
    assert mf.scfguess_info["guess"] == "minao" and "UnsupportedElementError" in mf.scfguess_info["fallback_reason"]
    assert mf.converged and mf.e_tot == pytest.approx(water_minao.e_tot, abs=1e-7)
    assert mf.cycles == water_minao.cycles
    with pytest.raises(UnsupportedElementError, match="O not covered"):
        scfguess.apply(rks(water()), model=MinaoModel(elements=("H",)), fallback=None).kernel()


def test_nan_prediction(oracle_model):
    fallback_case(FixedModel(np.full_like(oracle_model.coeffs, np.nan)), "NaN or infinite", "atom")
    with pytest.raises(ValueError, match="NaN or infinite"):
        scfguess.apply(rks(water()), model=FixedModel(oracle_model.coeffs * np.inf), fallback=None).kernel()


def test_failed_conversion(oracle_model):
    fallback_case(FixedModel(oracle_model.coeffs[:-3]), "coefficient vector has shape")


def test_guess_too_large_for_memory(monkeypatch):
    monkeypatch.setattr(scf_module, "available_memory_mb", lambda: 0.01)
    fallback_case(MinaoModel(), "needs about .* MB, more than the 0 MB available")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A model directory with an untrained tiny model (H, C, O) as default."""
    folder = tmp_path_factory.mktemp("models")
    save_tiny_model(folder)
    return folder


def test_missing_truncated_tampered_and_too_new_model(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path))
    fallback_case("no-such-model", "density model 'no-such-model' not found")
    with pytest.raises(ModelNotInstalledError):
        scfguess.apply(rks(water()), model="no-such-model", fallback=None).kernel()
    truncated = shutil.copytree(tiny_model_dir / "tiny", tmp_path / "truncated")
    weights = truncated / registry.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    fallback_case(str(truncated), "weights are corrupt or were replaced")
    tampered = shutil.copytree(tiny_model_dir / "tiny", tmp_path / "tampered")
    data = bytearray((tampered / registry.WEIGHTS_FILE).read_bytes())
    data[-50] ^= 0xFF
    (tampered / registry.WEIGHTS_FILE).write_bytes(bytes(data))
    fallback_case(str(tampered), "weights are corrupt or were replaced")
    newer = shutil.copytree(tiny_model_dir / "tiny", tmp_path / "newer")
    meta = json.loads((newer / registry.METADATA_FILE).read_text())
    meta["format_version"] = registry.FORMAT_VERSION + 1
    (newer / registry.METADATA_FILE).write_text(json.dumps(meta))
    fallback_case(str(newer), "newer than the")
    with pytest.raises(ValueError, match="newer than the"):
        scfguess.apply(rks(water()), model=str(newer), fallback=None).get_init_guess()


@pytest.mark.parametrize("atom, match", [
    ("O 0 0 0; H 0 0 nan; H 0 0.9 -0.3", "NaN or infinite coordinates"),
    ("O 0 0 0; H 0 0 inf; H 0 0.9 -0.3", "NaN or infinite coordinates"),
    ("O 0 0 0; H 0 0 0.96; H 0 0 0.96", "atoms 1 and 2 .* same position"),
])
def test_impossible_geometry_raises_even_with_a_fallback(atom, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mol = gto.M(atom=atom, basis="sto-3g", verbose=0)
    with pytest.raises(ValueError, match=match):
        scfguess.apply(rks(mol), model=MinaoModel()).kernel()
    with pytest.raises(ValueError, match=match):
        scfguess.init_guess_by_ml(mol, model=MinaoModel())


def test_invalid_arguments_and_periodic_systems():
    with pytest.raises(ValueError, match="fallback must be None or a PySCF guess name"):
        scfguess.apply(rks(water()), fallback="guess-it")
    with pytest.raises(ValueError, match="needs a PySCF SCF object"):
        scfguess.apply(water())
    from pyscf.pbc import gto as pbcgto, scf as pbcscf

    cell = pbcgto.M(atom="H 0 0 0; H 0 0 0.74", a=np.eye(3) * 4, basis="sto-3g", verbose=0)
    with pytest.raises(ValueError, match="periodic systems"):
        scfguess.apply(pbcscf.RHF(cell))


def test_odd_electrons_impossible_spin_or_missing_basis_are_refused_by_pyscf_before_the_hook():
    with pytest.raises(RuntimeError, match="Electron number 9 and spin 0 are not consistent"):
        gto.M(atom=WATER, basis="sto-3g", charge=1, verbose=0)
    with pytest.raises(AssertionError):  # PySCF's own check of spin > electrons (negative spin is legal there)
        gto.M(atom=WATER, basis="sto-3g", spin=12, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception, match="Basis set not found for Xe in 6-31g"):
            gto.M(atom="Xe 0 0 0", basis="6-31g", verbose=0)


def test_unknown_functional_fails_before_any_guess():
    model = MinaoModel()
    with pytest.raises((KeyError, ValueError)):
        scfguess.apply(rks(water(), xc="nonsense"), model=model).kernel()


# ---------------------------------------------------------------- a real model folder


def test_saved_model_through_the_registry(tiny_model_dir, monkeypatch, water_minao):
    """An untrained tiny model in a model directory: loaded, verified and used (bad guess, same energy)."""
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_model_dir))
    folder = tiny_model_dir / "tiny"
    mf = scfguess.apply(rks(water()).density_fit(), fallback=None)  # the default model
    mf.kernel()
    assert mf.scfguess_info["model_sha256"] == registry.sha256_file(folder / registry.WEIGHTS_FILE)
    assert mf.converged and mf.e_tot == pytest.approx(water_minao.e_tot, abs=1e-7)
    with pytest.warns(UserWarning, match="not covered by the density model"):
        scfguess.apply(rks(gto.M(atom="N 0 0 0; N 0 0 1.1", basis="sto-3g", verbose=0)), model="tiny").get_init_guess()


@pytest.mark.skipif(not (registry.shipped_models_dir() / "DEFAULT").is_file(),
                    reason="no default model is shipped (models/)")
def test_default_installed_model_on_ethanol():
    mol = gto.M(atom=ETHANOL, basis="def2-svp", verbose=0)
    ref = rks(mol).density_fit()
    ref.kernel()
    mf = scfguess.apply(rks(mol).density_fit(), fallback=None)
    mf.kernel()
    assert mf.scfguess_info["guess"] == "ml" and mf.converged
    assert mf.e_tot == pytest.approx(ref.e_tot, abs=1e-7) and mf.cycles < ref.cycles


# ---------------------------------------------------------------- charge, retry, model cache


@pytest.mark.parametrize("charge, match", [(-30, "charge -30, more extra electrons than it can bind"),
                                           (8, "charge 8, more than its 8 valence electrons allow")])
def test_implausible_charge_is_refused_before_any_scf(charge, match):
    model = MinaoModel()
    with pytest.raises(ValueError, match=match):
        scfguess.apply(rks(water(charge=charge)), model=model)
    mf = rks(water())
    scfguess.apply(mf, model=model)
    mf.mol = water(charge=charge)  # changed after apply: refused when the guess is asked for, even with a fallback
    with pytest.raises(ValueError, match=match):
        mf.kernel()
    assert model.calls == 0


def test_unconverged_ml_start_is_retried_once_from_minao(water_minao, monkeypatch):
    """A guess that needs more than max_cycle cycles: the hook runs the SCF again from minao and says so."""
    from scfguess.guess import Guess

    def poor_guess(mf, model=None, **kwargs):  # the core-Hamiltonian guess: 8 cycles where minao needs 6
        return Guess(dm=mf.get_init_guess(key="1e"), seconds=0.0, load_seconds=0.0, model=MinaoModel())

    monkeypatch.setattr(hook, "ml_guess", poor_guess)
    mf = rks(water()).density_fit()
    mf.max_cycle = water_minao.cycles
    scfguess.apply(mf, model=MinaoModel())
    with pytest.warns(UserWarning, match="did not converge in 6 cycles; running it once more from 'minao'"):
        mf.kernel()
    info = mf.scfguess_info
    assert info["guess"] == "ml" and info["retry"] == "minao" and info["ml_cycles"] == water_minao.cycles
    assert np.isfinite(info["ml_energy"])
    assert mf.converged and mf.cycles == water_minao.cycles
    assert mf.e_tot == pytest.approx(water_minao.e_tot, abs=1e-7)
    mf.max_cycle, mf.mo_coeff = 50, None
    mf.kernel()  # converges from the ML guess: no retry recorded
    assert mf.converged and mf.scfguess_info["retry"] is None


def test_second_ml_guess_in_a_process_does_not_load_the_model_again(tiny_model_dir, monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_model_dir))
    first = scfguess.apply(rks(water()), model="tiny", fallback=None)
    first.get_init_guess()
    hashed = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda path: hashed.append(path) or real(path))
    second = scfguess.apply(rks(water()), model="tiny", fallback=None)
    second.get_init_guess()
    assert hashed == [] and second.scfguess_info["load_seconds"] < 0.01
    assert second.scfguess_info["model_sha256"] == first.scfguess_info["model_sha256"]
    assert registry.load_model("tiny") is registry.load_model(tiny_model_dir / "tiny")


def test_ghost_atoms_carry_no_electrons_in_the_charge_check():
    """Counterpoise-style ghost atoms have no nucleus: water + ghost H is a closed shell with 10 electrons."""
    mol = gto.M(atom=WATER + "; ghost-H 0 0 2.5", basis="sto-3g", verbose=0)
    mf = scfguess.apply(rks(mol), model=MinaoModel())
    assert mf.init_guess == "ml" and mol.nelectron == 10
