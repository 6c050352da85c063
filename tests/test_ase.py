"""The ASE calculator: units, optimisation and MD against plain PySCF, guesses per step, bad input."""

import warnings

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import SCFError
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from pyscf import dft, gto
from pyscf.data import nist


from scfguess import hook
from scfguess import scf as scf_module
from scfguess.ase import SCFGuessCalculator
from stub_models import MinaoModel

FAST = dict(basis="sto-3g", grids_level=1, conv_tol=1e-10)


def plain_pyscf(atoms, basis="sto-3g", charge=0, spin=0):
    """RI-J PBE with PySCF alone (minao guess, same grid): energy (Hartree), gradient (Hartree/Bohr), dipole (au)."""
    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], basis=basis,
                charge=charge, spin=spin, unit="Angstrom", verbose=0)
    mf = (dft.UKS if spin else dft.RKS)(mol, xc="pbe").density_fit()
    mf.grids.level = 1
    mf.conv_tol = 1e-10
    mf.kernel()
    grad = mf.nuc_grad_method()
    grad.grid_response = True
    return mf.e_tot, grad.kernel(), mf.dip_moment(unit="AU", verbose=0)


@pytest.fixture(scope="module")
def model():
    return MinaoModel()


def test_units_match_plain_pyscf(model):
    atoms = molecule("H2O")
    atoms.calc = SCFGuessCalculator(model=model, **FAST)
    energy, grad, dipole = plain_pyscf(atoms)
    assert atoms.get_potential_energy() == pytest.approx(energy * nist.HARTREE2EV, abs=1e-6)
    assert atoms.calc.results["scf_guess"] == "ml" and atoms.calc.results["scf_cycles"] > 0
    np.testing.assert_allclose(atoms.get_forces(), -grad * nist.HARTREE2EV / nist.BOHR, atol=1e-5)
    np.testing.assert_allclose(atoms.get_dipole_moment(), dipole * nist.BOHR, atol=1e-6)


def test_bfgs_optimisation_reaches_the_plain_pyscf_energy(model):
    atoms = molecule("H2O")
    atoms.positions[0, 2] += 0.1
    calc = SCFGuessCalculator(model=model, **FAST)
    atoms.calc = calc
    guesses = []
    opt = BFGS(atoms, logfile=None)
    for _ in opt.irun(fmax=0.05, steps=20):
        guesses.append(calc.results["scf_guess"])
    assert opt.converged()
    assert guesses[0] == "ml" and set(guesses[1:]) <= {"ml", "previous", "extrapolate"}
    assert "extrapolate" in guesses
    energy, grad, _ = plain_pyscf(atoms)
    assert atoms.get_potential_energy() == pytest.approx(energy * nist.HARTREE2EV, abs=1e-6)
    assert np.abs(grad).max() * nist.HARTREE2EV / nist.BOHR < 0.05


def test_velocity_verlet_three_steps_conserve_energy(model):
    atoms = molecule("H2O")
    atoms.set_velocities(np.random.default_rng(0).normal(scale=0.02, size=(3, 3)))
    calc = SCFGuessCalculator(guess="ml", model=model, **FAST)
    atoms.calc = calc
    e0 = atoms.get_total_energy()
    cycles = []
    dyn = VelocityVerlet(atoms, 0.2 * units.fs, logfile=None)  # forces of ~2.6 eV/Å at the start
    for _ in range(3):
        dyn.run(1)
        cycles.append(calc.results["scf_cycles"])
        assert calc.results["scf_guess"] == "ml"
    assert abs(atoms.get_total_energy() - e0) < 2e-3 and all(c > 0 for c in cycles)


def test_guess_modes_and_charge_spin_from_atoms_info(model):
    atoms = molecule("H2O")
    atoms.info.update(charge=1, spin=1)
    calc = SCFGuessCalculator(guess="previous", model=model, **FAST)
    atoms.calc = calc
    energy, _, _ = plain_pyscf(atoms, charge=1, spin=1)
    assert atoms.get_potential_energy() == pytest.approx(energy * nist.HARTREE2EV, abs=1e-6)
    assert calc.results["scf_guess"] == "ml"
    atoms.positions[1] += 0.01
    atoms.get_potential_energy()
    assert calc.results["scf_guess"] == "previous" and calc.results["scf_cycles"] < 8
    auto = SCFGuessCalculator(model=model, **FAST)
    atoms.calc = auto
    atoms.get_potential_energy()
    for expected in ("previous", "extrapolate"):  # small steps: the measured best start (benchmarks/ase-guess)
        atoms.positions[1] += 0.01
        atoms.get_potential_energy()
        assert auto.results["scf_guess"] == expected
    atoms.positions[1] += 0.5  # a jump: the ML guess
    atoms.get_potential_energy()
    assert auto.results["scf_guess"] == "ml"
    atoms.calc = SCFGuessCalculator(charge=0, model=model, **FAST)  # the argument overrides atoms.info
    with pytest.raises(ValueError, match="spin 1 .* impossible with 10 electrons"):
        atoms.get_potential_energy()


@pytest.mark.parametrize("make_atoms, kwargs, error, match", [
    (lambda: molecule("H2O", pbc=True, cell=[5, 5, 5]), {}, ValueError, "periodic"),
    (lambda: Atoms("OHH", positions=[[0, 0, 0], [0, 0, np.nan], [0, 1, 0]]), {}, ValueError, "NaN or infinite"),
    (lambda: Atoms("OHH", positions=[[0, 0, 0], [0, 0, 1], [0, 0, 1]]), {}, ValueError, "same position"),
    (lambda: molecule("H2O"), {"spin": 12}, ValueError, "spin 12 .* needs more electrons than the 10 it has"),
    (lambda: molecule("H2O"), {"charge": 1}, ValueError, "spin 0 .* impossible with 9 electrons"),
    (lambda: molecule("H2O"), {"charge": -30}, ValueError, "charge -30, more extra electrons than it can bind"),
    (lambda: molecule("H2O"), {"charge": 8}, ValueError, "charge 8, more than its 8 valence electrons"),
    (lambda: molecule("H2O"), {"basis": "no-such-basis"}, ValueError, "unknown basis set"),
    (lambda: Atoms("Xe"), {"basis": "6-31g"}, ValueError, "not covered by the basis set"),
])
def test_bad_input_is_refused_with_one_sentence(make_atoms, kwargs, error, match, model):
    atoms = make_atoms()
    atoms.calc = SCFGuessCalculator(**{**FAST, **kwargs}, model=model)
    with pytest.raises(error, match=match):
        atoms.get_potential_energy()


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="unknown functional 'nonsense'"):
        SCFGuessCalculator(xc="nonsense")
    with pytest.raises(ValueError, match="guess must be one of auto, previous, extrapolate, previous.ml, ml, minao"):
        SCFGuessCalculator(guess="chk")
    with pytest.raises(ValueError, match="guess must be one of"):
        SCFGuessCalculator().set(guess="random")


def test_unsupported_element_falls_back_with_a_warning_or_raises():
    atoms = molecule("H2O")
    atoms.calc = SCFGuessCalculator(model=MinaoModel(elements=("H",)), **FAST)
    with pytest.warns(UserWarning, match="O not covered"):
        atoms.get_potential_energy()
    assert atoms.calc.results["scf_guess"] == "minao"
    atoms.calc = SCFGuessCalculator(model=MinaoModel(elements=("H",)), fallback=None, **FAST)
    with pytest.raises(ValueError, match="O not covered"):
        atoms.get_potential_energy()


def test_too_large_for_memory_and_unconverged_scf(model, monkeypatch):
    atoms = molecule("H2O")
    atoms.calc = SCFGuessCalculator(max_cycle=1, model=model, **FAST)
    with pytest.raises(SCFError, match="did not converge in 1 cycles"):
        atoms.get_potential_energy()
    monkeypatch.setattr(scf_module, "available_memory_mb", lambda: 0.01)
    atoms.calc = SCFGuessCalculator(model=model, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="needs about .* MB, more than the 0 MB available"):
            atoms.get_potential_energy()


# ---------------------------------------------------------------- guess names, trajectory starts, retry


def _spy_on_starts(monkeypatch):
    """Record the dm0 of every SCF the calculator runs and the converged density matrix it ends with."""
    import scfguess.ase as ase_module

    starts, finals = [], []
    real_build = ase_module.build_scf

    def build(*args, **kwargs):
        mf = real_build(*args, **kwargs)
        real_kernel = mf.kernel

        def kernel(dm0=None, **kw):
            starts.append(None if dm0 is None else np.array(dm0))
            out = real_kernel(dm0=dm0, **kw)
            finals.append(np.array(mf.make_rdm1()))
            return out

        mf.kernel = kernel
        return mf

    monkeypatch.setattr(ase_module, "build_scf", build)
    return starts, finals


def _steps(calc, n=3, step=(0.0, 0.012, 0.006)):
    atoms = molecule("H2O")
    atoms.calc = calc
    guesses, energies = [], []
    for _ in range(n):
        energies.append(atoms.get_potential_energy())
        guesses.append(calc.results["scf_guess"])
        atoms.positions[1] += step
    return atoms, guesses, energies


@pytest.mark.parametrize("name", ["minao", "atom", "huckel", "sap", "1e"])
def test_pyscf_guess_names_are_used_at_every_geometry_without_a_model(name):
    model = MinaoModel()
    _, guesses, energies = _steps(SCFGuessCalculator(guess=name, model=model, **FAST), n=2)
    assert guesses == [name, name] and model.calls == 0
    energy, _, _ = plain_pyscf(molecule("H2O"))
    # 1e-5 eV: the grid is pruned (small_rho_cutoff) with the first density, so the guess moves E by ~1e-6 eV
    assert energies[0] == pytest.approx(energy * nist.HARTREE2EV, abs=1e-5)


def test_extrapolate_starts_from_two_d_minus_one_d_minus_two(model, monkeypatch):
    starts, finals = _spy_on_starts(monkeypatch)
    atoms, guesses, energies = _steps(SCFGuessCalculator(guess="extrapolate", model=model, **FAST), n=3)
    assert guesses == ["ml", "previous", "extrapolate"]
    np.testing.assert_allclose(starts[1], finals[0])
    np.testing.assert_allclose(starts[2], 2 * finals[1] - finals[0])
    atoms.positions[1] -= (0.0, 0.012, 0.006)  # the last geometry computed
    energy, _, _ = plain_pyscf(atoms)
    assert energies[-1] == pytest.approx(energy * nist.HARTREE2EV, abs=1e-6)


def test_previous_plus_ml_moves_the_previous_matrix_by_the_change_of_the_ml_guess(model, monkeypatch):
    import scfguess
    from scfguess.scf import ScfSettings, build_scf
    from scfguess.structures import from_atoms

    starts, finals = _spy_on_starts(monkeypatch)
    calc = SCFGuessCalculator(guess="previous+ml", model=model, **FAST)
    _, guesses, _ = _steps(calc, n=2)
    assert guesses == ["ml", "previous+ml"]

    def ml_dm(shift):
        atoms = molecule("H2O")
        atoms.positions[1] += shift
        mf = build_scf(from_atoms(atoms, "w"), "sto-3g", "pbe", ScfSettings(grids_level=1, conv_tol=1e-10))
        return scfguess.init_guess(mf, model=model)

    ml0, ml1 = ml_dm((0, 0, 0)), ml_dm((0.0, 0.012, 0.006))
    np.testing.assert_allclose(starts[0], ml0, atol=1e-10)
    np.testing.assert_allclose(starts[1], finals[0] + ml1 - ml0, atol=1e-10)
    calc.set(guess="previous")  # a parameter change forgets the earlier steps
    assert calc._history == []


def test_unconverged_ml_start_is_retried_from_minao_and_recorded(monkeypatch):
    """ML guess = the core-Hamiltonian guess, 8 cycles where minao needs 6; max_cycle 6: retry, then converged."""
    import scfguess.hook as hook_module
    from scfguess.guess import Guess

    monkeypatch.setattr(hook_module, "ml_guess", lambda mf, model=None, **kw: Guess(
        dm=mf.get_init_guess(key="1e"), seconds=0.0, load_seconds=0.0, model=MinaoModel()))
    atoms = molecule("H2O")
    reference = SCFGuessCalculator(guess="minao", **FAST)
    atoms.calc = reference
    e_minao = atoms.get_potential_energy()
    cycles = reference.results["scf_cycles"]
    atoms.calc = SCFGuessCalculator(guess="ml", model=MinaoModel(), **{**FAST, "max_cycle": cycles})
    with pytest.warns(UserWarning, match="from the 'ml' guess did not converge .* once more from 'minao'"):
        energy = atoms.get_potential_energy()
    r = atoms.calc.results
    assert r["scf_guess"] == "ml" and r["scf_retry"] == "minao" and r["scf_cycles"] == cycles
    assert r["scf_cycles_total"] == 2 * cycles and energy == pytest.approx(e_minao, abs=1e-5)


def test_negative_spin_is_accepted(model):
    atoms = molecule("H2O")
    atoms.calc = SCFGuessCalculator(spin=-2, model=model, **FAST)
    energy, _, _ = plain_pyscf(atoms, spin=2)
    assert atoms.get_potential_energy() == pytest.approx(energy * nist.HARTREE2EV, abs=1e-5)
