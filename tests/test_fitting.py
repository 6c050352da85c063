"""Density fitting and Coulomb matrices against PySCF's own density fitting."""

import numpy as np
import pytest
from pyscf import df, dft, gto, scf

from scfguess import UnsupportedElementError, fit_density
from scfguess.density.auxbasis import aux_integrals, make_auxmol
from scfguess.density.electrons import electron_count, project_electron_count
from scfguess.density.fitting import coulomb_matrix, coulomb_matrix_from_cderi

from conftest import ETHANOL, WATER, make_mol


def test_fit_reproduces_pyscf_density_fitted_coulomb(water_pbe):
    mol = water_pbe.mol
    dm = water_pbe.make_rdm1()
    coeffs = fit_density(mol, dm)
    auxmol = make_auxmol(mol)
    # PySCF's RI-J with the same auxiliary basis is exactly J of the fitted density.
    j_pyscf = water_pbe.get_j(mol, dm)
    assert np.abs(coulomb_matrix(mol, auxmol, coeffs) - j_pyscf).max() < 1e-10
    assert np.abs(coulomb_matrix_from_cderi(water_pbe.with_df, auxmol, coeffs) - j_pyscf).max() < 1e-10


def test_screened_coulomb_matrix_matches_the_blocked_integrals():
    """The direct, screened J of a fitted density equals Σ_P (μν|P) c_P from stored integral blocks."""
    from pyscf import lib

    from scfguess.density.fitting import int3c_blocks

    mol = make_mol(ETHANOL, basis="def2-svp")
    auxmol = make_auxmol(mol)
    coeffs = fit_density(mol, scf.hf.init_guess_by_minao(mol))
    packed = sum(ints @ coeffs[p0:p1] for p0, p1, ints in int3c_blocks(mol, auxmol, max_memory=1))
    np.testing.assert_allclose(coulomb_matrix(mol, auxmol, coeffs), lib.unpack_tril(packed), atol=1e-9)


def test_fitted_coulomb_energy_close_to_exact(water_pbe):
    mol = water_pbe.mol
    dm = water_pbe.make_rdm1()
    coeffs = fit_density(mol, dm)
    e_exact = 0.5 * np.einsum("ij,ji", scf.hf.get_jk(mol, dm)[0], dm)
    e_fit = 0.5 * coeffs @ make_auxmol(mol).intor("int2c2e") @ coeffs
    # The Coulomb-metric fit underestimates the exact Coulomb energy by a small, positive amount.
    assert 0 <= e_exact - e_fit < 1e-3


def test_blocking_does_not_change_the_fit(water_pbe):
    dm = water_pbe.make_rdm1()
    reference = fit_density(water_pbe.mol, dm)
    assert np.abs(fit_density(water_pbe.mol, dm, max_memory=0.01) - reference).max() < 1e-10


def test_spin_density_matrix_fits_total_density(water_pbe):
    dm = water_pbe.make_rdm1()
    total = fit_density(water_pbe.mol, dm)
    assert np.allclose(fit_density(water_pbe.mol, np.array([dm / 2, dm / 2])), total, atol=1e-12)


def test_aux_integrals_match_numerical_quadrature(water):
    auxmol = make_auxmol(water)
    grids = dft.gen_grid.Grids(auxmol)
    grids.level = 5
    grids.build()
    numeric = dft.numint.eval_ao(auxmol, grids.coords).T @ grids.weights
    assert np.abs(numeric - aux_integrals(auxmol)).max() < 1e-6


def test_electron_count_and_projection(water_pbe):
    mol = water_pbe.mol
    auxmol = make_auxmol(mol)
    coeffs = fit_density(mol, water_pbe.make_rdm1())
    assert abs(electron_count(auxmol, coeffs) - 10) < 0.01
    projected = project_electron_count(auxmol, 0.9 * coeffs, 10)
    assert abs(electron_count(auxmol, projected) - 10) < 1e-10


def test_cartesian_basis_matches_spherical_where_they_coincide():
    # 6-31G has no d functions, so Cartesian and spherical orbital bases are the same space.
    sph, cart = make_mol(WATER, "6-31g"), make_mol(WATER, "6-31g", cart=True)
    dm = scf.RHF(sph).get_init_guess()
    assert np.abs(fit_density(cart, dm) - fit_density(sph, dm)).max() < 1e-10


def test_cartesian_d_functions_fit_the_right_electron_count():
    mol = make_mol(ETHANOL, "6-31g*", cart=True)
    dm = scf.RHF(mol).get_init_guess()
    count = electron_count(make_auxmol(mol), fit_density(mol, dm))
    assert abs(count - mol.nelectron) < 0.05


def test_auxbasis_dict_from_aug_etb(water):
    dm = scf.RHF(water).get_init_guess()
    coeffs = fit_density(water, dm, auxbasis=df.aug_etb(water, beta=2.0))
    assert coeffs.size == make_auxmol(water, df.aug_etb(water, beta=2.0)).nao


def test_unknown_auxbasis_is_a_clear_error(water):
    with pytest.raises(ValueError, match="unknown auxiliary basis 'no-such-jfit'"):
        fit_density(water, scf.RHF(water).get_init_guess(), auxbasis="no-such-jfit")


def test_element_missing_from_auxbasis_is_named(water):
    with pytest.raises(UnsupportedElementError, match="H") as info:
        make_auxmol(water, {"O": "def2-universal-jfit"})
    assert info.value.elements == ["H"]


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.full((24, 24), np.nan)])
def test_bad_density_matrix(water, bad):
    with pytest.raises(ValueError, match="density matrix"):
        fit_density(water, bad)


@pytest.mark.parametrize("dipoles", [False, True])
def test_atom_moment_projection(dipoles):
    """Per-atom populations (and dipoles) reach their targets with the smallest Coulomb-metric change."""
    from scfguess.density.auxbasis import coulomb_metric
    from scfguess.density.electrons import atom_moments, project_atom_moments

    mol = gto.M(atom="O 0 0 0; H 0 0.76 0.59; H 0 -0.76 0.59", basis="def2-svp", verbose=0)
    auxmol = make_auxmol(mol)
    coeffs = fit_density(mol, scf.hf.init_guess_by_minao(mol))
    m = atom_moments(auxmol, coeffs, dipoles)
    p = m[:, 0] if dipoles else m
    assert p.sum() == pytest.approx(electron_count(auxmol, coeffs))
    target = m + (np.random.default_rng(1).normal(size=m.shape) * 0.1)
    moved = project_atom_moments(auxmol, coeffs, target, dipoles)
    np.testing.assert_allclose(atom_moments(auxmol, moved, dipoles), target, atol=1e-10)
    # the smallest change: any other vector with the same moments is further away in the Coulomb metric
    metric = coulomb_metric(auxmol)
    other = project_atom_moments(auxmol, coeffs + 1e-3 * np.random.default_rng(0).normal(size=coeffs.size),
                                 target, dipoles)
    d_min, d_other = moved - coeffs, other - coeffs
    assert d_min @ metric @ d_min < d_other @ metric @ d_other


def test_atom_dipoles_add_up_to_the_density_dipole():
    """Σ_A (μ_A + R_A p_A) is the electronic dipole ∫ r ρ of the fitted density, checked on a grid."""
    from pyscf import dft

    from scfguess.density.electrons import atom_moments, density_on_points

    mol = gto.M(atom="O 0 0 0.1; H 0 0.76 0.59; H 0 -0.76 0.69", basis="def2-svp", verbose=0)
    auxmol = make_auxmol(mol)
    coeffs = fit_density(mol, scf.hf.init_guess_by_minao(mol))
    m = atom_moments(auxmol, coeffs, dipoles=True)
    from_atoms = (m[:, 1:] + auxmol.atom_coords() * m[:, :1]).sum(axis=0)
    grids = dft.gen_grid.Grids(mol)
    grids.level = 4
    grids.build()
    rho = density_on_points(auxmol, coeffs, grids.coords, "LDA")
    on_grid = np.einsum("g,g,gx->x", grids.weights, rho, grids.coords)
    np.testing.assert_allclose(from_atoms, on_grid, atol=2e-3)
