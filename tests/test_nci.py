"""The NCI split: counts, disjointness and deterministic geometries."""

import numpy as np
import pytest

from scfbench import nci


def test_counts_match_design():
    eligible = nci.eligible_molecules()
    assert len(eligible) == 4287
    assert sum(m.natoms <= 20 for m in eligible) == 1039
    assert sum(21 <= m.natoms <= 25 for m in eligible) == 790
    assert sum(26 <= m.natoms <= 60 for m in eligible) == 2255
    assert sum(61 <= m.natoms <= 100 for m in eligible) == 179
    assert [m.index for m in eligible] == list(range(len(eligible)))


def test_evaluation_and_training_pool_are_disjoint_and_complete():
    evaluation = nci.evaluation_molecules()
    pool = nci.training_pool()
    assert len(evaluation) == 2144 and len(pool) == 2076
    assert {m.index for m in evaluation}.isdisjoint({m.index for m in pool})
    assert all(m.index % 2 == 0 for m in evaluation) and all(m.index % 2 == 1 for m in pool)
    # the file repeats some compounds: identity is the stereo-free canonical SMILES
    from rdkit import Chem

    def key(m):
        return Chem.MolToSmiles(Chem.MolFromSmiles(m.smiles), isomericSmiles=False)

    pool_keys = [key(m) for m in pool]
    assert len(set(pool_keys)) == len(pool_keys)
    assert {key(m) for m in evaluation}.isdisjoint(pool_keys)


def test_size_filter_is_inclusive():
    small = nci.training_pool(max_atoms=20)
    assert small and all(m.natoms <= 20 for m in small)
    assert {m.natoms for m in nci.evaluation_molecules(21, 25)} <= set(range(21, 26))


def test_elements_are_allowed():
    for m in nci.eligible_molecules()[:200]:
        assert set(m.elements) <= set(nci.ELEMENTS)


def test_embed_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("SCFBENCH_CACHE", str(tmp_path))
    smiles = "CCO"
    a = nci.embed(smiles)
    assert len(list(tmp_path.iterdir())) == 1
    b = nci.embed(smiles)  # from the cache
    monkeypatch.setenv("SCFBENCH_CACHE", str(tmp_path / "other"))
    c = nci.embed(smiles)  # recomputed
    assert a.get_chemical_formula() == "C2H6O"
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_allclose(a.positions, c.positions, atol=1e-10)
    confs = nci.embed(smiles, seed=1, n_confs=3)
    assert len(confs) == 3


def test_embed_rejects_bad_input():
    with pytest.raises(ValueError):
        nci.embed("not a smiles")
    with pytest.raises(ValueError):
        nci.embed("CCO", n_confs=0)
