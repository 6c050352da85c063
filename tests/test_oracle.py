"""The oracle guess reaches the same energy as minao in no more cycles."""

import numpy as np
import pytest
from pyscf import dft

from scfguess import oracle_guess
from scfguess.guess import oracle_from_dm

from conftest import AMMONIUM, DIOXYGEN, ETHANOL, WATER, make_mol


def run_pair(mol, xc="pbe", cls=dft.RKS, density_fit=True):
    """minao run and oracle-started run of the same calculation: (minao mf, oracle mf)."""
    def build():
        mf = cls(mol, xc=xc)
        mf = mf.density_fit() if density_fit else mf
        mf.conv_tol = 1e-9
        mf.nlcgrids.level = 0  # VV10 (ωB97X-V) on a coarse grid keeps the test fast
        return mf

    ref = build()
    ref.kernel()
    mf = build()
    mf.kernel(dm0=oracle_guess(ref, mf))
    return ref, mf


def assert_no_worse(ref, mf):
    assert ref.converged and mf.converged
    assert abs(mf.e_tot - ref.e_tot) < 1e-6
    assert mf.cycles <= ref.cycles


@pytest.mark.parametrize("xc", ["lda,vwn", "pbe", "scan", "r2scan", "b3lyp", "pbe0", "camb3lyp", "wb97x_v"])
def test_every_functional_on_water(xc):
    assert_no_worse(*run_pair(make_mol(WATER), xc))


@pytest.mark.parametrize("basis, cart", [("def2-svp", False), ("def2-tzvp", False),
                                         ("6-31g*", True), ("cc-pvdz", False)])
def test_every_basis_on_water(basis, cart):
    assert_no_worse(*run_pair(make_mol(WATER, basis, cart=cart)))


def test_without_density_fitting():
    assert_no_worse(*run_pair(make_mol(WATER), "b3lyp", density_fit=False))


@pytest.mark.parametrize("atom, charge, spin, cls", [
    (ETHANOL, 0, 0, dft.RKS),
    (AMMONIUM, 1, 0, dft.RKS),
    (DIOXYGEN, 0, 2, dft.UKS),
])
def test_molecules_charges_and_spins(atom, charge, spin, cls):
    assert_no_worse(*run_pair(make_mol(atom, charge=charge, spin=spin), cls=cls))


def test_reference_in_another_basis_and_functional():
    water = make_mol(WATER)
    ref = dft.RKS(make_mol(WATER, "6-31g"), xc="pbe").run()
    mf = dft.RKS(water, xc="b3lyp")
    conversion = oracle_from_dm(mf, ref.mol, ref.make_rdm1())
    assert abs(np.trace(conversion.dm @ mf.get_ovlp()) - 10) < 1e-10


def test_reference_for_another_molecule_is_refused():
    ref = dft.RKS(make_mol(WATER), xc="pbe").run()
    with pytest.raises(ValueError, match="different molecule"):
        oracle_guess(ref, dft.RKS(make_mol(AMMONIUM, charge=1)))


def test_reference_not_run_is_refused():
    water = make_mol(WATER)
    with pytest.raises(ValueError, match="has not been run"):
        oracle_guess(dft.RKS(water), dft.RKS(water))


FUNCTIONALS = ["lda,vwn", "pbe", "blyp", "scan", "r2scan", "b3lyp", "pbe0", "camb3lyp", "wb97x_v"]
BASES = [("def2-svp", False), ("def2-tzvp", False), ("6-31g*", True), ("cc-pvdz", False)]


@pytest.mark.slow
@pytest.mark.parametrize("atom", [WATER, ETHANOL])
@pytest.mark.parametrize("xc", FUNCTIONALS)
@pytest.mark.parametrize("basis, cart", BASES)
def test_full_matrix(atom, xc, basis, cart):
    assert_no_worse(*run_pair(make_mol(atom, basis, cart=cart), xc))
