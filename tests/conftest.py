"""Shared small molecules, built once per test session."""

import pytest
from pyscf import dft, gto

WATER = "O 0.0000 0.0000 0.1173; H 0.0000 0.7572 -0.4692; H 0.0000 -0.7572 -0.4692"
ETHANOL = """C -0.0007 -0.0003 0.0000; C 1.5148 0.0001 0.0000; O 2.0019 1.3392 0.0000;
H -0.3860 1.0206 0.0000; H -0.3865 -0.5087 0.8838; H -0.3865 -0.5087 -0.8838;
H 1.8913 -0.5258 0.8845; H 1.8913 -0.5258 -0.8845; H 2.9690 1.3021 0.0000"""
AMMONIUM = ("N 0 0 0; H 0.629 0.629 0.629; H -0.629 -0.629 0.629; "
            "H -0.629 0.629 -0.629; H 0.629 -0.629 -0.629")
HYDROXIDE = "O 0 0 0; H 0 0 0.97"
DIOXYGEN = "O 0 0 0; O 0 0 1.21"


def make_mol(atom, basis="def2-svp", **kwargs):
    """A PySCF molecule with output silenced."""
    return gto.M(atom=atom, basis=basis, verbose=0, **kwargs)


@pytest.fixture(scope="session")
def water():
    return make_mol(WATER)


@pytest.fixture(scope="session")
def water_pbe(water):
    """Converged PBE/def2-SVP RI-J water (the reference for oracle tests)."""
    mf = dft.RKS(water, xc="pbe").density_fit()
    mf.conv_tol = 1e-10
    mf.kernel()
    assert mf.converged
    return mf
