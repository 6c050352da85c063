"""Training data: shard schema, lazy reader, fragments, work list, resumable labelling, re-label check."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from scfguess.data import keys as K
from scfguess.data import DensityDataset, write_shard
from workflows.data import label
from workflows.data import worklist as structures

ROOT = Path(__file__).resolve().parents[1]


def _record(sid, split="train", natoms=3, naux=7, seed=0):
    rng = np.random.default_rng(seed)
    return {
        K.NUMBERS_KEY: rng.integers(1, 10, natoms), K.POSITIONS_KEY: rng.normal(size=(natoms, 3)),
        K.COEFFS_KEY: rng.normal(size=naux), K.ENERGY_KEY: -76.1 - seed, K.CHARGE_KEY: 0, K.SPIN_KEY: 0,
        K.NELECTRON_KEY: 10, K.FIT_ELECTRONS_KEY: 9.99, K.MINAO_CYCLES_KEY: 7 + seed, K.CONVERGED_KEY: True,
        K.SCF_SECONDS_KEY: 1.5, K.NAO_KEY: 24, K.NAUX_KEY: naux, K.STRUCTURE_ID_KEY: sid,
        K.MOLECULE_ID_KEY: "m-" + sid, K.SOURCE_KEY: "nci", K.SMILES_KEY: "O", K.SPLIT_KEY: split,
        K.SPIN_COEFFS_KEY: np.zeros(naux), K.ECP_KEY: "{}",
    }


def test_schema_round_trip(tmp_path):
    records = [_record("a", natoms=3, naux=7, seed=0), _record("b", "val", natoms=5, naux=9, seed=1),
               _record("c", natoms=2, naux=4, seed=2)]
    path = tmp_path / "shard-00000.h5"
    write_shard(path, records, label.shard_attributes(label.LabelSettings()))
    with pytest.raises(FileExistsError):
        write_shard(path, records, label.shard_attributes(label.LabelSettings()))
    ds = DensityDataset([path])
    assert len(ds) == 3 and len(DensityDataset(path, split="val")) == 1
    for rec, item in zip(records, [ds[i] for i in range(3)]):
        np.testing.assert_array_equal(item[K.NUMBERS_KEY], rec[K.NUMBERS_KEY])
        np.testing.assert_array_equal(item[K.POSITIONS_KEY], rec[K.POSITIONS_KEY])
        assert item[K.COEFFS_KEY].dtype == np.float32
        np.testing.assert_allclose(item[K.COEFFS_KEY], rec[K.COEFFS_KEY], rtol=2**-23)
        np.testing.assert_array_equal(item[K.SPIN_COEFFS_KEY], rec[K.SPIN_COEFFS_KEY])
        for name in K.SCALAR_FIELDS:
            assert item[name] == pytest.approx(rec[name])
        for name in K.STRING_FIELDS:
            assert item[name] == rec[name]
    assert ds.attrs[0]["auxbasis"] == "def2-universal-jfit" and ds.attrs[0]["xc"] == "pbe"
    # an open handle is dropped when pickled (DataLoader workers reopen lazily)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._files == {} and clone[2][K.STRUCTURE_ID_KEY] == "c"
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match="auxbasis|fitted"):
        DensityDataset(path, auxbasis="def2-universal-jkfit")


def test_reader_refuses_file_without_attributes(tmp_path):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(K.COEFFS_KEY, data=np.zeros(3, np.float32))
        f.create_dataset(K.SPLIT_KEY, data=["train"], dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match="not a density shard"):
        DensityDataset([path])
    good = tmp_path / "shard.h5"
    write_shard(good, [_record("a")], label.shard_attributes(label.LabelSettings()))
    with h5py.File(good, "a") as f:
        f.attrs["schema_version"] = K.SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema_version"):
        DensityDataset([good])


def test_version_1_shards_still_read():
    """The committed shards of schema 1 read with zero spin coefficients and no ECP."""
    path = ROOT / "data" / "shards" / "shard-00000.h5"
    with h5py.File(path, "r") as f:
        assert int(f.attrs["schema_version"]) == 1 and K.SPIN_COEFFS_KEY not in f
    item = DensityDataset([path])[0]
    assert item[K.SPIN_COEFFS_KEY].shape == item[K.COEFFS_KEY].shape and not item[K.SPIN_COEFFS_KEY].any()
    assert item[K.ECP_KEY] == "{}"


def test_writer_refuses_a_record_without_a_schema_field(tmp_path):
    record = _record("a")
    del record[K.SPIN_COEFFS_KEY]
    with pytest.raises(ValueError, match="spin_coeffs"):
        write_shard(tmp_path / "shard.h5", [record], label.shard_attributes(label.LabelSettings()))


def test_open_shell_label_stores_the_spin_density():
    """A doublet is labelled with UKS; the fitted spin density integrates to 2S and the total to N."""
    from scfguess.density import electron_count, make_auxmol
    from scfguess.structures import from_atoms, to_mole

    item = {"structure_id": "methyl", "source": "radical", "molecule_id": "methyl", "smiles": "[CH3]",
            "natoms": 4, "elements": ["C", "H"], "split": "train", "charge": 0, "spin": 1}
    settings = label.LabelSettings(basis="sto-3g", grids_level=0)
    rec = label.label_structure(item, settings)
    assert rec[K.SPIN_KEY] == 1 and rec[K.NELECTRON_KEY] == 9 and rec[K.ECP_KEY] == "{}"
    mol = to_mole(from_atoms(structures.build_atoms(item), "methyl", spin=1), "sto-3g")
    auxmol = make_auxmol(mol)
    assert electron_count(auxmol, rec[K.SPIN_COEFFS_KEY]) == pytest.approx(1.0, abs=1e-2)
    assert electron_count(auxmol, rec[K.COEFFS_KEY]) == pytest.approx(9.0, abs=1e-2)


def test_iodine_gets_its_def2_ecp():
    from scfguess.structures import Structure, atomic_numbers, to_mole

    mol = to_mole(Structure(id="HI", numbers=np.array([1, 53]), positions=np.array([[0, 0, 0], [0, 0, 1.61]])))
    assert mol.nelectron == 26 and list(atomic_numbers(mol)) == [1, 53] and mol.atom_charges()[1] == 25


def test_variants_have_the_charge_spin_and_elements_they_claim():
    from rdkit import Chem

    from scfbench import variants

    kinds = {kind: (Chem.MolFromSmiles(smi), charge)
             for kind, smi, charge in variants.charged_variants("NCC(=O)O", "glycine")}
    assert set(kinds) == {"cation", "anion", "zwitterion"}
    for kind, (mol, charge) in kinds.items():
        assert Chem.GetFormalCharge(mol) == charge
    assert sum(a.GetFormalCharge() != 0 for a in kinds["zwitterion"][0].GetAtoms()) == 2
    radical = Chem.MolFromSmiles(variants.radical_variant("CCO", "ethanol"))
    assert sum(a.GetNumRadicalElectrons() for a in radical.GetAtoms()) == 1
    assert variants.halogen_variant("Clc1ccccc1", "I", "x") == "Ic1ccccc1"
    assert "Br" in variants.halogen_variant("c1ccccc1", "Br", "x")
    assert variants.charged_variants("c1ccccc1", "benzene") == []


def test_domain_work_list_has_the_counts_and_no_evaluation_molecule():
    """The committed wider-domain work list: charge/spin as claimed, never an SCFbench molecule, parents' split."""
    from rdkit import Chem

    from workflows.data.domain import _evaluation_canonicals

    items = structures.read_work_list(ROOT / "data" / "worklist-domain.jsonl")
    by_source = {}
    for it in items:
        by_source.setdefault(it["source"], []).append(it)
    charged = by_source["cation"] + by_source["anion"] + by_source["zwitterion"]
    assert len(charged) >= 300 and len(by_source["zwitterion"]) >= 50
    assert sum(it["natoms"] > 20 for it in charged) >= 100
    assert len(by_source["radical"]) >= 200 and len(by_source["bromide"]) >= 300 and len(by_source["iodide"]) >= 300
    evaluation = _evaluation_canonicals()
    for it in items:
        mol = Chem.MolFromSmiles(it["smiles"])
        assert Chem.GetFormalCharge(mol) == it["charge"]
        assert sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()) == it["spin"]
        assert Chem.MolToSmiles(mol, isomericSmiles=False) not in evaluation
        assert it["split"] == structures.split_of(it["molecule_id"])


def test_held_out_domain_structures_are_validation_variants_with_their_charge_and_spin():
    from workflows.data.domain import held_out_domain_structures

    charged = held_out_domain_structures("charged", limit=6)
    radicals = held_out_domain_structures("radical", limit=2)
    assert len(charged) == 6 and any(s.charge != 0 for s in charged) and all(s.spin == 0 for s in charged)
    assert all(s.spin == 1 for s in radicals) and all(s.id.startswith("held-out-radical-") for s in radicals)
    assert all("validation split" in s.source for s in charged + radicals)
    with pytest.raises(ValueError, match="unknown held-out group 'ions'"):
        held_out_domain_structures("ions")


def test_benchmark_ion_radical_and_halogen_sets():
    from scfbench.sets import set_entries

    ions = set_entries("ions")[:4]
    assert {e.build().charge for e in ions} == {1, -1}
    anions, cations = set_entries("anions"), set_entries("cations")
    assert [e.id for e in anions[:10]] == [e.id for e in set_entries("ions")[:20] if e.id.endswith("-anion")]
    assert len(anions) + len(cations) == len(set_entries("ions"))
    assert anions[0].build().charge == -1 and cations[0].build().charge == 1
    radical = set_entries("radicals")[0].build()
    assert radical.spin == 1 and radical.nelectron % 2 == 1
    halogen = set_entries("nci-halogen")
    assert sum("I" in e.build().symbols for e in halogen[:24]) >= 8
    assert all(20 <= e.natoms <= 40 for e in halogen)


@pytest.mark.parametrize("smiles", [
    "CC(=O)Oc1ccc(cc1)C(=O)NCCN(C)C",  # amide, ester, amine chain
    "O=[N+]([O-])c1ccc(cc1)CCP(=O)(O)OCC",  # nitro group stays whole, phosphonate
    "FC(F)(F)c1ccc(Cl)cc1SCC(=O)OC",  # CF3, Cl, thioether
])
def test_fragments_are_capped_valence_correct_closed_shell(smiles):
    from rdkit import Chem

    frags = structures.fragments(smiles)
    assert len(frags) >= 3
    parent_heavy = Chem.MolFromSmiles(smiles).GetNumAtoms()
    for canonical, natoms in frags:
        mol = Chem.MolFromSmiles(canonical)  # sanitizes: valences are legal
        assert mol is not None
        mol_h = Chem.AddHs(mol)
        assert mol_h.GetNumAtoms() == natoms <= structures.MAX_ATOMS
        assert structures.MIN_FRAGMENT_HEAVY_ATOMS <= mol.GetNumAtoms() < parent_heavy
        assert Chem.GetFormalCharge(mol) == 0
        assert all(a.GetNumRadicalElectrons() == 0 for a in mol.GetAtoms())
        assert sum(a.GetAtomicNum() for a in mol_h.GetAtoms()) % 2 == 0
    assert len({c for c, _ in frags}) == len(frags)
    if "[N+]" in smiles:  # the nitro group is never cut apart
        assert all("[N+]" in c for c, _ in frags if "N" in c)


def test_work_list_uses_training_pool_only_and_splits_by_parent():
    from scfbench.nci import evaluation_molecules

    items = structures.read_work_list(ROOT / "data" / "worklist.jsonl")
    evaluation = {m.canonical for m in evaluation_molecules()}
    assert not evaluation & {it["smiles"] for it in items}
    assert len({it["structure_id"] for it in items}) == len(items)
    split_of_parent = {}
    for it in items:
        assert split_of_parent.setdefault(it["molecule_id"], it["split"]) == it["split"]
        assert it["natoms"] <= structures.MAX_ATOMS
    first = structures.summary(items[:3000])
    assert all(first["by_element"][e] >= 300 for e in ("H", "C", "N", "O", "F", "P", "S", "Cl"))
    assert first["by_source"]["fragment"] + first["by_source"].get("conformer", 0) >= 1000
    assert first["distinct_molecules"] >= 800


def test_held_out_molecules_are_validation_parents_never_trained_on():
    from scfbench.nci import evaluation_molecules

    held_out = structures.held_out_structures(21, 40, limit=4)
    assert len(held_out) == 4 and all(21 <= len(st.numbers) <= 40 for st in held_out)
    parents = {st.id.removeprefix("held-out-") for st in held_out}
    items = structures.read_work_list(ROOT / "data" / "worklist.jsonl")
    assert {it["split"] for it in items if it["molecule_id"] in parents} == {"val"}
    assert not {it["molecule_id"] for it in items if it["split"] == "train"} & parents
    evaluation = {f"nci-{m.nci_id}" for m in evaluation_molecules()}
    assert not parents & evaluation
    assert [st.id for st in structures.held_out_structures(21, 40, limit=2)] == [st.id for st in held_out[:2]]


def test_whole_molecules_are_training_parents_in_a_fixed_order():
    from scfbench.nci import evaluation_molecules

    items = structures.whole_items(21, 40)
    assert items and all(it.source == "whole" and it.split == "train" and 21 <= it.natoms <= 40 for it in items)
    ids = {it.molecule_id for it in items}
    assert not ids & {st.id.removeprefix("held-out-") for st in structures.held_out_structures(21, 40)}
    assert not ids & {f"nci-{m.nci_id}" for m in evaluation_molecules()}
    assert all(structures.split_of(it.molecule_id) == "train" for it in items)
    assert [it.structure_id for it in structures.whole_items(21, 40)] == [it.structure_id for it in items]
    atoms = structures.build_atoms(items[0])
    assert len(atoms) == items[0].natoms


def test_conformer_geometry_is_deterministic_and_displaced():
    item = {"structure_id": "x-c1", "source": "conformer", "molecule_id": "x", "smiles": "CCO", "natoms": 9,
            "elements": ["C", "H", "O"], "seed": 1, "jitter": True, "split": "train"}
    a, b = structures.build_atoms(item), structures.build_atoms(item)
    np.testing.assert_array_equal(a.positions, b.positions)
    plain = structures.build_atoms({**item, "jitter": False})
    shift = np.linalg.norm(a.positions - plain.positions, axis=1)
    assert 0 < shift.max() < 0.5


def _tiny_work_list(path):
    import ase.build

    items = []
    for name in ("H2O", "NH3", "CH4"):
        atoms = ase.build.molecule(name)
        items.append(structures.StructureItem(
            f"g2-{name}", "qm7", f"g2-{name}", "", len(atoms), sorted(set(atoms.get_chemical_symbols())),
            split="val" if name == "NH3" else "train", numbers=atoms.numbers.tolist(),
            positions=atoms.positions.tolist()))
    structures.write_work_list(items, path)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A label run on H2O/NH3/CH4 killed (SIGKILL) after its first result, then resumed."""
    tmp = tmp_path_factory.mktemp("label")
    _tiny_work_list(tmp / "wl.jsonl")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "workflows.data.label", "--worklist", str(tmp / "wl.jsonl"), "--data",
           str(tmp / "data"), "--shard-size", "10"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pending = tmp / "data" / "pending"
    deadline = time.time() + 120
    while not list(pending.glob("*.npz")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survived = sorted(p.stem for p in pending.glob("*.npz"))
    assert 1 <= len(survived) < 3 and not list((tmp / "data" / "shards").glob("*.h5"))
    result = label.run(tmp / "wl.jsonl", tmp / "data", shard_size=10)
    return tmp, survived, result


def test_label_resumes_after_kill(labelled):
    tmp, survived, result = labelled
    assert result["labelled"] == 3 - len(survived) and result["failed"] == 0
    shards = sorted((tmp / "data" / "shards").glob("*.h5"))
    assert len(shards) == 1 and not list((tmp / "data" / "pending").glob("*.npz"))
    ds = DensityDataset(shards)
    ids = [ds[i][K.STRUCTURE_ID_KEY] for i in range(len(ds))]
    assert ids == ["g2-H2O", "g2-NH3", "g2-CH4"]  # work-list order, each once
    for i in range(len(ds)):
        item = ds[i]
        assert item[K.CONVERGED_KEY] and item[K.MINAO_CYCLES_KEY] > 0
        assert item[K.FIT_ELECTRONS_KEY] == pytest.approx(10.0, abs=0.05)
        assert len(item[K.COEFFS_KEY]) == item[K.NAUX_KEY]
    manifest = json.loads((tmp / "data" / "manifest.json").read_text())
    assert manifest["structures"] == 3 and manifest["by_split"] == {"train": 2, "val": 1}
    assert manifest["structures_with_element"]["H"] == 3
    # nothing left to do: a further run labels nothing and writes no shard
    again = label.run(tmp / "wl.jsonl", tmp / "data", shard_size=10)
    assert again == {"labelled": 0, "failed": 0, "shards": []}


def test_data_report_counts_atoms_and_label_cost(labelled):
    from workflows.data.report import data_report

    tmp, _, _ = labelled
    report = data_report(tmp / "data", workers=3)
    assert report["structures"] == 3 and report["by_source"] == {"qm7": 3}
    assert report["atoms_with_element"] == {"C": 1, "H": 9, "N": 1, "O": 1}  # H2O + NH3 + CH4
    cost = report["cost"]
    assert cost["shards"] == [0, 0] and cost["structures"] == 3 and cost["mean_atoms"] == pytest.approx(4.0)
    assert cost["structures_per_hour"] == pytest.approx(3 * 3600 / cost["mean_seconds"])
    with pytest.raises(ValueError, match=r"no shard numbered 1\.\. in"):
        data_report(tmp / "data", first_shard=1)
    with pytest.raises(FileNotFoundError, match="no labelled data"):
        data_report(tmp / "nothing")
    assert report["domain"] == {"cations": 0, "anions": 0, "zwitterions": 0, "charged_21_40_atoms": 0,
                                "open_shell": 0}


def test_domain_counts_of_a_shard():
    from workflows.data.report import _domain_counts

    shard = {K.CHARGE_KEY: np.array([1, -1, 0, 0, 0]), K.SPIN_KEY: np.array([0, 0, 0, 1, 0]),
             K.SOURCE_KEY: np.array([b"cation", b"anion", b"zwitterion", b"radical", b"whole"]),
             K.ATOM_OFFSETS_KEY: np.cumsum([0, 25, 12, 30, 16, 35])}
    assert _domain_counts(shard) == {"cations": 1, "anions": 1, "zwitterions": 1, "charged_21_40_atoms": 2,
                                     "open_shell": 1}


def test_relabel_reproduces_stored_coefficients(labelled):
    from workflows.data.relabel_check import relabel

    tmp, _, _ = labelled
    shards = sorted((tmp / "data" / "shards").glob("*.h5"))
    report = relabel(shards, n=2, settings=label.LabelSettings())
    assert report["n"] == 2
    # stored precision: float32 rounding of coefficients of magnitude up to ~10
    assert report["max_abs_coeff_diff"] <= 2e-6
    assert report["max_abs_energy_diff"] < 1e-8


def test_sigterm_seals_pending_results(tmp_path, monkeypatch):
    _tiny_work_list(tmp_path / "wl.jsonl")
    calls = []

    def fake_label(item, settings):
        calls.append(item["structure_id"])
        if len(calls) == 2:  # a shutdown request arrives while the second structure is in flight
            os.kill(os.getpid(), signal.SIGTERM)
        return {**_record(item["structure_id"], item["split"]), K.MOLECULE_ID_KEY: item["molecule_id"]}

    monkeypatch.setattr(label, "label_structure", fake_label)
    result = label.run(tmp_path / "wl.jsonl", tmp_path / "data", shard_size=10)
    assert result == {"labelled": 1, "failed": 0, "shards": ["shard-00000.h5"]}
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ds = DensityDataset(sorted((tmp_path / "data" / "shards").glob("*.h5")))
    assert [ds[i][K.STRUCTURE_ID_KEY] for i in range(len(ds))] == ["g2-H2O"]
    # the interrupted structure is labelled by the next run
    monkeypatch.setattr(label, "label_structure", lambda item, settings: _record(item["structure_id"]))
    assert label.run(tmp_path / "wl.jsonl", tmp_path / "data", shard_size=10)["labelled"] == 2


def test_label_with_and_without_the_df_tensor_agree(tmp_path):
    from workflows.data.label_timing import time_labels

    item = {"structure_id": "nci-0", "source": "nci", "molecule_id": "nci-0", "smiles": "CO", "natoms": 6,
            "elements": ["C", "H", "O"], "seed": 1, "jitter": False, "split": "train"}
    worklist = tmp_path / "worklist.jsonl"
    worklist.write_text(json.dumps(item) + "\n")
    result = time_labels(str(worklist), start=0, n=1, repeats=1)
    assert result["max_energy_difference"] < 1e-8
    assert [r["df_tensor"] for r in result["runs"]] == [False, True] and result["speedup"] > 0
