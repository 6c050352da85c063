"""PySCF <-> e3nn change of basis and the per-element auxiliary irreps."""

import numpy as np
import pytest
from pyscf import gto
from scipy.spatial.transform import Rotation

from scfguess.errors import UnsupportedElementError
from scfguess.model.irreps import (
    change_of_basis,
    element_irreps,
    element_nao,
    pyscf_rotation,
    pyscf_to_e3nn,
    shell_angular_momenta,
)


@pytest.mark.parametrize("l", range(5))
def test_change_of_basis_is_orthogonal(l):
    q = change_of_basis(l)
    assert q.shape == (2 * l + 1, 2 * l + 1)
    np.testing.assert_allclose(q @ q.T, np.eye(2 * l + 1), atol=1e-12)


def test_l0_and_l1_are_identity():
    np.testing.assert_allclose(change_of_basis(0), [[1.0]])
    np.testing.assert_allclose(change_of_basis(1), np.eye(3), atol=1e-12)


def test_l2_is_not_a_reordering():
    q = change_of_basis(2)
    assert np.count_nonzero(np.abs(q) > 1e-12) > 5


@pytest.mark.parametrize(
    "symbol, nao, irreps",
    [
        ("H", 11, "3x0e+1x1o+1x2e"),
        ("C", 49, "6x0e+4x1o+3x2e+1x3o+1x4e"),
        ("O", 49, "6x0e+4x1o+3x2e+1x3o+1x4e"),
        ("S", 51, "8x0e+4x1o+3x2e+1x3o+1x4e"),
        ("Cl", 51, "8x0e+4x1o+3x2e+1x3o+1x4e"),
    ],
)
def test_element_irreps(symbol, nao, irreps):
    assert element_nao(symbol) == nao
    assert str(element_irreps(symbol)) == irreps
    assert element_irreps(symbol).dim == nao


def test_unknown_element_raises():
    with pytest.raises(UnsupportedElementError) as err:
        shell_angular_momenta("U")
    assert err.value.elements == ["U"]


@pytest.mark.parametrize("symbol", ["H", "Cl"])
@pytest.mark.parametrize("improper", [False, True])
def test_aux_function_values_rotate_as_e3nn_predicts(symbol, improper):
    """chi_pyscf(R r) = Q.T D_e3nn(R) Q chi_pyscf(r), in float64, for every aux function of an atom."""
    mol = gto.M(atom=[[symbol, (0.0, 0.0, 0.0)]], basis={symbol: "def2-universal-jfit"},
                spin=gto.charge(symbol) % 2, verbose=0)
    rng = np.random.default_rng(7)
    points = rng.normal(scale=0.8, size=(200, 3))
    rot = Rotation.random(random_state=3).as_matrix()
    if improper:
        rot = -rot
    d = pyscf_rotation(shell_angular_momenta(symbol), rot)
    values = mol.eval_gto("GTOval_sph", points)
    rotated = mol.eval_gto("GTOval_sph", points @ rot.T)
    scale = np.abs(values).max()
    np.testing.assert_allclose(rotated, values @ d.T, atol=1e-9 * scale)


def test_block_matrix_round_trip():
    ls = shell_angular_momenta("C")
    m = pyscf_to_e3nn(ls)
    np.testing.assert_allclose(m.T @ m, np.eye(element_nao("C")), atol=1e-12)
