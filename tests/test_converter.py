"""The density → density-matrix converter: pieces against PySCF, invariants, errors."""

import numpy as np
import pytest
from pyscf import dft, scf

from scfguess import UnsupportedElementError, density_to_dm, fit_density
from scfguess.density.auxbasis import make_auxmol
from scfguess.density.converter import convert, xc_potential
from scfguess.density.grids import ScreenedBeckeGrids

from conftest import AMMONIUM, DIOXYGEN, HYDROXIDE, WATER, make_mol


@pytest.mark.parametrize("xc", ["lda,vwn", "pbe", "scan", "b3lyp"])
def test_xc_assembly_matches_pyscf(water, xc):
    """Fed the density PySCF evaluates from a density matrix, V_xc equals nr_rks."""
    mf = dft.RKS(water, xc=xc)
    mf.grids.level = 1
    mf.grids.build(with_non0tab=True)
    ni = mf._numint
    dm = scf.RHF(water).get_init_guess()

    def density(ao, mask, coords, xctype):
        return ni.eval_rho(water, ao, dm, mask, xctype)

    vxc, nelectron = xc_potential(ni, water, mf.grids, xc, density)
    n_ref, _, v_ref = ni.nr_rks(water, mf.grids, xc, dm)
    assert np.abs(vxc - v_ref).max() < 1e-10
    assert abs(nelectron - n_ref) < 1e-10


def _octane_chain():
    """All-trans C8 chain with hydrogens, ~10 Å long: far atoms for the screened partition to drop."""
    atoms = []
    for i in range(8):
        x, y = 1.27 * i, 0.43 * (-1) ** i
        atoms.append(("C", (x, y, 0.0)))
        atoms += [("H", (x, y + 0.63 * (-1) ** i, 0.88)), ("H", (x, y + 0.63 * (-1) ** i, -0.88))]
    atoms += [("H", (-0.95, 0.43 - 0.5, 0.0)), ("H", (7 * 1.27 + 0.95, -0.43 + 0.5, 0.0))]
    return make_mol(atoms)


def _built(grids, level=1):
    grids.level = level
    return grids.build(with_non0tab=True)


def test_screened_partition_is_beckes_when_every_atom_is_in_reach(water):
    """With every atom in reach the partition is PySCF's, less exactly the points of negligible weight."""
    full = _built(dft.gen_grid.Grids(water))
    screened = _built(ScreenedBeckeGrids(water, reach=1e3))
    kept, screened_kept = full.weights > screened.negligible, screened.weights > 0  # both without padding
    assert 0 < np.count_nonzero(~kept) and np.array_equal(full.coords[kept], screened.coords[screened_kept])
    assert np.abs(full.weights[kept] - screened.weights[screened_kept]).max() < 1e-12


def test_screened_partition_error_is_far_below_the_grids_own():
    """On a 26-atom chain the screening changes weights, yet V_xc of a minao density moves < 1/5 of level 1 → 3."""
    mol = _octane_chain()
    dm = scf.hf.init_guess_by_minao(mol)
    ni = dft.numint.NumInt()
    full, screened = _built(dft.gen_grid.Grids(mol)), _built(ScreenedBeckeGrids(mol))
    assert screened.weights.size < full.weights.size
    n_ref, _, v_ref = ni.nr_rks(mol, _built(dft.gen_grid.Grids(mol), level=3), "pbe", dm)
    n_full, _, v_full = ni.nr_rks(mol, full, "pbe", dm)
    n_scr, _, v_scr = ni.nr_rks(mol, screened, "pbe", dm)
    assert np.abs(v_scr - v_full).max() < 0.2 * np.abs(v_full - v_ref).max()
    assert abs(n_scr - n_full) < 0.2 * abs(n_full - n_ref) + 1e-6


@pytest.fixture(scope="module")
def water_coeffs(water_pbe):
    return fit_density(water_pbe.mol, water_pbe.make_rdm1())


def test_water_guess_invariants_and_fingerprint(water):
    # Deterministic input (no SCF): the fitted minao density.
    coeffs = fit_density(water, scf.hf.init_guess_by_minao(water))
    mf = dft.RKS(water, xc="pbe").density_fit()
    dm = density_to_dm(mf, coeffs)
    s = mf.get_ovlp()
    assert dm.shape == (water.nao, water.nao)
    assert np.allclose(dm, dm.T, atol=1e-12)
    assert abs(np.trace(dm @ s) - 10) < 1e-10
    assert np.abs(dm @ s @ dm - 2 * dm).max() < 1e-10  # idempotent closed-shell guess
    # Fingerprint of the water PBE/def2-SVP guess (changes if the converter changes).
    fingerprint = np.einsum("ij,ij", dm, np.cos(np.arange(dm.size).reshape(dm.shape)))
    assert fingerprint == pytest.approx(4.04734364, abs=5e-8)


def test_converter_does_not_change_settings(water, water_coeffs):
    mf = dft.RKS(water, xc="pbe")
    before = (mf.xc, mf.conv_tol, mf.max_cycle, mf.init_guess, mf.grids.level)
    density_to_dm(mf, water_coeffs)
    assert (mf.xc, mf.conv_tol, mf.max_cycle, mf.init_guess, mf.grids.level) == before
    assert mf.mo_coeff is None


def test_converter_keeps_the_scf_j_algorithm(water, water_coeffs):
    """A pure functional keeps PySCF's direct RI-J (no stored tensor); a hybrid builds the tensor it needs anyway."""
    pure = dft.RKS(water, xc="pbe").density_fit()
    dm_direct = density_to_dm(pure, water_coeffs)
    assert pure.with_df._cderi is None
    pure.with_df.build()
    assert np.abs(density_to_dm(pure, water_coeffs) - dm_direct).max() < 1e-8
    hybrid = dft.RKS(water, xc="b3lyp").density_fit()
    density_to_dm(hybrid, water_coeffs)
    assert hybrid.with_df._cderi is not None


@pytest.mark.parametrize("atom, charge, spin, cls, shape", [
    (AMMONIUM, 1, 0, dft.RKS, 2),
    (HYDROXIDE, -1, 0, dft.RKS, 2),
    (DIOXYGEN, 0, 2, dft.UKS, 3),
    (DIOXYGEN, 0, 2, dft.ROKS, 3),
    (WATER, 1, 1, dft.UKS, 3),
])
def test_electron_count_charge_and_spin(atom, charge, spin, cls, shape):
    mol = make_mol(atom, charge=charge, spin=spin)
    # PySCF's minao density is a superposition of neutral atoms: the count is off by the charge.
    coeffs = fit_density(mol, scf.hf.init_guess_by_minao(mol))
    mf = cls(mol, xc="pbe")
    conversion = convert(mf, coeffs)
    dm = conversion.dm
    assert dm.ndim == shape
    s = mf.get_ovlp()
    if dm.ndim == 3:
        na, nb = mol.nelec
        assert abs(np.trace(dm[0] @ s) - na) < 1e-10 and abs(np.trace(dm[1] @ s) - nb) < 1e-10
    else:
        assert abs(np.trace(dm @ s) - mol.nelectron) < 1e-10
    assert conversion.nelectron_fitted == pytest.approx(mol.atom_charges().sum(), abs=0.05)


@pytest.mark.parametrize("exchange", ["sad", "diag", "diag:2", "pbe:2", "gga", "none"])
def test_hybrid_exchange_treatments(water, water_coeffs, exchange):
    mf = dft.RKS(water, xc="b3lyp").density_fit()
    conversion = convert(mf, water_coeffs, exchange=exchange)
    assert conversion.exchange == exchange.split(":")[0]
    assert conversion.k_builds == {"sad": 1, "diag": 1, "diag:2": 2}.get(exchange, 0)
    assert abs(np.trace(conversion.dm @ mf.get_ovlp()) - 10) < 1e-10


def test_gga_exchange_stands_in_for_the_exact_fraction(water, water_coeffs):
    """'gga': V_xc of B3LYP plus 0.2 B88 exchange, no K build; closer to the SCF than leaving exchange out, and
    refused where it cannot be defined."""
    from scfbench.guesses import guess_quality
    from scfguess.density.converter import local_exchange_functional

    mf = dft.RKS(water, xc="b3lyp").density_fit()
    assert local_exchange_functional(mf) == "b3lyp + 0.2*B88"
    mf_split = dft.RKS(water, xc=".2*HF + .08*LDA + .72*B88, .81*LYP + .19*VWN").density_fit()
    assert local_exchange_functional(mf_split) == ".2*HF + .08*LDA + .72*B88 + 0.2*B88, .81*LYP + .19*VWN"
    gga, none = (convert(mf, water_coeffs, exchange=e) for e in ("gga", "none"))
    assert gga.k_builds == 0 and not np.allclose(gga.dm, none.dm)
    assert guess_quality(mf, gga.dm)[1] < guess_quality(mf, none.dm)[1]
    with pytest.raises(ValueError, match="range-separated"):
        convert(dft.RKS(water, xc="wb97x").density_fit(), water_coeffs, exchange="gga")
    with pytest.raises(ValueError, match="Kohn-Sham hybrid"):
        convert(scf.RHF(water).density_fit(), water_coeffs, exchange="gga")


def test_pure_functional_ignores_exchange(water, water_coeffs):
    conversion = convert(dft.RKS(water, xc="pbe"), water_coeffs, exchange="sad")
    assert conversion.exchange == "none" and conversion.k_builds == 0


def test_wrong_length_coefficients(water, water_coeffs):
    with pytest.raises(ValueError, match=r"shape \(10,\).*def2-universal-jfit has 71 functions"):
        density_to_dm(dft.RKS(water), water_coeffs[:10])


def test_nan_coefficients(water, water_coeffs):
    bad = water_coeffs.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        density_to_dm(dft.RKS(water), bad)


def test_unknown_auxbasis(water, water_coeffs):
    with pytest.raises(ValueError, match="unknown auxiliary basis"):
        density_to_dm(dft.RKS(water), water_coeffs, auxbasis="not-a-basis")


def test_element_missing_from_auxbasis(water, water_coeffs):
    with pytest.raises(UnsupportedElementError, match="H"):
        density_to_dm(dft.RKS(water), water_coeffs, auxbasis={"O": "def2-universal-jfit"})


@pytest.mark.parametrize("kwargs, message", [
    ({"exchange": "hf"}, "unknown exchange treatment"),
    ({"exchange": "pbe:x"}, "positive integer"),
    ({"fix_charge": "yes"}, "fix_charge"),
])
def test_bad_options(water, water_coeffs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        density_to_dm(dft.RKS(water, xc="b3lyp"), water_coeffs, **kwargs)


def test_not_an_scf_object(water_coeffs):
    with pytest.raises(ValueError, match="expected a PySCF SCF object"):
        density_to_dm("water", water_coeffs)


def test_scf_grid_option_leaves_mf_grids_alone(water, water_coeffs):
    mf = dft.RKS(water, xc="pbe")
    dm_scf_grid = density_to_dm(mf, water_coeffs, grids_level=None)
    assert mf.grids.coords is None  # the SCF prunes its own grid with the initial density matrix
    dm_coarse = density_to_dm(dft.RKS(water, xc="pbe"), water_coeffs)
    assert np.abs(dm_scf_grid - dm_coarse).max() < 1e-2


def test_hartree_fock_takes_exchange_from_a_density_matrix(water, water_coeffs):
    for exchange in ("sad", "pbe:1"):
        conversion = convert(scf.RHF(water), water_coeffs, exchange=exchange)
        assert abs(np.trace(conversion.dm @ scf.RHF(water).get_ovlp()) - 10) < 1e-10


@pytest.mark.parametrize("xc", ["lda,vwn", "pbe", "scan"])
def test_spin_polarised_xc_assembly_matches_pyscf(xc):
    """Fed the α and β densities PySCF evaluates from a UHF density matrix, V_xc^α,β equal nr_uks."""
    mol = make_mol(HYDROXIDE, charge=0, spin=1)  # the OH radical
    mf = dft.UKS(mol, xc=xc)
    mf.grids.level = 1
    mf.grids.build(with_non0tab=True)
    ni = mf._numint
    dm = scf.UHF(mol).get_init_guess()

    def density(ao, mask, coords, xctype):
        return np.array([ni.eval_rho(mol, ao, d, mask, xctype) for d in dm])

    vxc, nelectron = xc_potential(ni, mol, mf.grids, xc, density, spin=1)
    n_ref, _, v_ref = ni.nr_uks(mol, mf.grids, xc, dm)
    assert vxc.shape == (2, mol.nao, mol.nao)
    assert np.abs(vxc - v_ref).max() < 1e-10
    assert abs(nelectron - np.sum(n_ref)) < 1e-10


def test_spin_density_gives_spin_polarised_guess():
    """With the fitted spin density of a converged radical, the α and β guesses differ, hold N_α and N_β
    electrons, and start the SCF no worse than the spin-free density does."""
    mol = make_mol(HYDROXIDE, charge=0, spin=1)
    ref = dft.UKS(mol, xc="pbe").density_fit().run(conv_tol=1e-9)
    dm = np.asarray(ref.make_rdm1())
    coeffs, spin = fit_density(mol, dm), fit_density(mol, dm[0] - dm[1])
    s = ref.get_ovlp()
    cycles = {}
    for label, m in (("spin-free", None), ("spin", spin)):
        mf = dft.UKS(mol, xc="pbe").density_fit()
        guess = density_to_dm(mf, coeffs, spin_coeffs=m)
        assert [np.trace(d @ s) for d in guess] == pytest.approx([5, 4], abs=1e-8)
        mf.kernel(dm0=guess)
        assert mf.converged and abs(mf.e_tot - ref.e_tot) < 1e-7
        cycles[label] = mf.cycles
        if m is not None:
            assert np.abs(guess[0] - guess[1]).max() > 1e-3
    assert cycles["spin"] <= cycles["spin-free"]
    closed = dft.RKS(make_mol(WATER), xc="pbe")
    water = fit_density(closed.mol, closed.get_init_guess())
    np.testing.assert_array_equal(density_to_dm(closed, water, spin_coeffs=np.ones_like(water)),
                                  density_to_dm(closed, water))  # closed shells ignore a spin density


def test_profile_resumes_from_its_output_and_refuses_other_settings(tmp_path, capsys):
    """A rerun of the size profile skips the molecules its --out already holds (no SCF work), and an --out written
    with other settings is refused with one sentence instead of being mixed in."""
    import json

    from workflows.checks.converter_profile import SETTINGS, main

    out = tmp_path / "profile.json"
    row = {"molecule": "g2:g2-CH3CH2OH", "guess_per_cycle": 0.25}
    out.write_text(json.dumps({"settings": SETTINGS, "max_memory": 2000, "rows": [row]}))
    assert main(["g2:g2-CH3CH2OH", "--max-memory", "2000", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rows"] == [row]
    assert "already in" in capsys.readouterr().err
    assert main(["g2:g2-CH3CH2OH", "--max-memory", "4000", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_profile_scores_the_guess_and_minao_from_the_first_cycle(tmp_path):
    """The size profile's cycle half: the first cycle's Fock matrix gives the guess's energy and gradient norm (as
    SCFbench's guess_quality computes them), and minao is scored beside it."""
    from scfbench.guesses import guess_quality
    from scfguess.scf import ScfSettings, make_scf
    from scfguess.structures import to_mole
    from workflows.checks.converter_profile import SETTINGS, _structure, profile_guess, profile_cycle

    guess_file = str(tmp_path / "guess.npy")
    row = profile_guess("g2:g2-CH3CH2OH", 2000, guess_file)
    row.update(profile_cycle("g2:g2-CH3CH2OH", 2000, guess_file))
    mf = make_scf(to_mole(_structure("g2:g2-CH3CH2OH"), SETTINGS["basis"]), SETTINGS["xc"], ScfSettings())
    mf.grids.build(with_non0tab=True)  # the profile scores on the unpruned SCF grid
    energy, gnorm = guess_quality(mf, np.load(guess_file))
    assert row["guess_energy"] == pytest.approx(energy, abs=1e-8)
    assert row["guess_gnorm"] == pytest.approx(gnorm, rel=1e-6)
    assert 0 < row["guess_gnorm"] < row["minao_gnorm"]
    assert row["cycle_seconds"] > 0 and row["inference_seconds"] > 0
    parts = row["conversion_parts"]
    assert set(parts) == {"coulomb", "grid", "xc", "exchange_and_diagonalise"} and 0 < parts["grid"] < parts["xc"]
    # both shortcuts change the guess's Fock matrix far less than the level-1 grid's own error does
    assert row["grid_screening_error"] < 0.01 * row["grid_level_error"]
    assert 0 <= row["coulomb_screening_error"] < 1e-5
