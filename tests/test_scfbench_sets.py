"""SCFbench molecule sets: listing without geometries, NCI evaluation/training disjointness, determinism."""

import numpy as np
import pytest

from scfbench import sets
from scfbench.nci import evaluation_molecules, training_pool


def test_describe_lists_every_set_with_counts_and_ranges():
    rows = {r["name"]: r for r in sets.describe_sets()}
    assert list(rows) == list(sets.SET_NAMES)
    for name, (lo, hi) in sets.NCI_BINS.items():
        assert rows[name]["molecules"] > 0
        assert lo is None or rows[name]["min_atoms"] >= lo
        assert hi is None or rows[name]["max_atoms"] <= hi
    assert sum(rows[n]["molecules"] for n in sets.NCI_BINS) == len(evaluation_molecules())
    assert rows["s22"]["molecules"] == 22
    assert 100 < rows["g2"]["molecules"] < 162
    assert rows["peptides"]["min_atoms"] <= 40 and rows["peptides"]["max_atoms"] >= 800
    assert rows["polymers"]["min_atoms"] <= 60 and rows["polymers"]["max_atoms"] >= 800


def test_nci_sets_hold_evaluation_molecules_only_and_never_training_ones():
    train = {m.canonical for m in training_pool()}
    train_index = {m.index for m in training_pool()}
    evaluation = {f"nci-{m.index}": m for m in evaluation_molecules()}
    seen = set()
    for name in sets.NCI_BINS:
        for entry in sets.set_entries(name):
            m = evaluation[entry.id]
            assert m.index % 2 == 0 and m.index not in train_index
            assert m.canonical not in train
            assert entry.natoms == m.natoms
            seen.add(entry.id)
    assert seen == set(evaluation)


def test_g2_subset_is_closed_shell_neutral():
    for entry in sets.set_entries("g2"):
        s = entry.build()
        assert s.charge == 0 and s.spin == 0 and s.nelectron % 2 == 0
    ids = [e.id for e in sets.set_entries("g2")]
    assert "g2-H2O" in ids and "g2-CH3" not in ids and "g2-O2" not in ids


def test_nci_geometry_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SCFBENCH_CACHE", str(tmp_path))
    entry = min(sets.set_entries("nci-le20"), key=lambda e: e.natoms)
    first = entry.build()
    assert len(list(tmp_path.glob("*.npz"))) == 1
    second = entry.build()
    assert first.natoms == entry.natoms and first.charge == 0 and first.spin == 0
    np.testing.assert_array_equal(first.positions, second.positions)
    from scfbench.nci import _embed_uncached

    _, fresh = _embed_uncached(entry.builder.args[1], 0xC0FFEE, 1)
    np.testing.assert_allclose(fresh[0], first.positions, atol=1e-6)


def test_select_limit_and_sample():
    entries = sets.set_entries("s22")
    assert [e.id for e in sets.select(entries, limit=3)] == [e.id for e in entries[:3]]
    a = sets.select(entries, sample=5, seed=1)
    assert [e.id for e in a] == [e.id for e in sets.select(entries, sample=5, seed=1)]
    assert len(a) == 5 and [e.id for e in a] != [e.id for e in sets.select(entries, sample=5, seed=2)]
    with pytest.raises(ValueError, match="at least 1"):
        sets.select(entries, limit=0)


def test_resolve_sets_and_paths(tmp_path):
    path = tmp_path / "w.xyz"
    path.write_text("3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    structures = sets.resolve_molecules(f"s22,{path}", limit=2)
    assert [s.id for s in structures] == ["s22-Ammonia_dimer", "s22-Water_dimer", "w"]
    with pytest.raises(ValueError, match="unknown molecule set 'nci-1-2'"):
        sets.resolve_molecules("nci-1-2")
    with pytest.raises(ValueError, match="does not exist"):
        sets.resolve_molecules(str(tmp_path / "missing.xyz"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "w.xyz").write_text("2\n\nH 0 0 0\nH 0 0 0.74\n")
    with pytest.raises(ValueError, match="share the id 'w'"):
        sets.resolve_molecules(f"{path},{other / 'w.xyz'}")
