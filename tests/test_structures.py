"""Structure validation, file readers and the PySCF boundary of scfguess.structures."""

import numpy as np
import pytest

from scfguess.errors import UnsupportedElementError
from scfguess.structures import Structure, from_atoms, read_structures, to_atoms, to_mole

WATER_XYZ = "3\ncharge=0 spin=0 name=water\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n"
OH_XYZ = "2\ncharge=0 spin=1\nO 0 0 0\nH 0 0 0.97\n"
PLAIN_XYZ = "2\njust a comment\nH 0 0 0\nH 0 0 0.74\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_multi_frame_extxyz_reads_charge_spin_and_names(tmp_path):
    path = write(tmp_path, "mix.xyz", WATER_XYZ + OH_XYZ + PLAIN_XYZ)
    structures = read_structures(path)
    assert [s.id for s in structures] == ["water", "mix:1", "mix:2"]
    water, oh, h2 = structures
    assert water.formula == "H2O" and water.charge == 0 and water.spin == 0
    assert oh.spin == 1 and oh.nelectron == 9
    assert h2.natoms == 2
    np.testing.assert_allclose(water.positions[1], [0, 0.7572, -0.4692])
    assert water.positions.dtype == np.float64 and water.numbers.dtype == np.int64


def test_single_frame_id_is_file_stem(tmp_path):
    (s,) = read_structures(write(tmp_path, "hydrogen.xyz", PLAIN_XYZ))
    assert s.id == "hydrogen"


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("3\n\nO 0 0 0\nH 0 0 1\n", "cannot read"),
    ("2\n\nH 0 0 x\nH 0 0 0.74\n", "cannot read"),
    ("2\n\nXx 0 0 0\nH 0 0 0.74\n", "unknown element symbol 'Xx'"),
    ("2\n\nH 0 0 nan\nH 0 0 0.74\n", "NaN or infinite"),
    ("2\n\nH 0 0 0\nH 0 0 0\n", "at the same position"),
    ('2\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\nH 0 0 0\nH 0 0 0.74\n', "periodic"),
    ("2\ncharge=1 spin=0\nH 0 0 0\nH 0 0 0.74\n", "impossible with 1 electrons"),
    ("2\ncharge=0 spin=1\nH 0 0 0\nH 0 0 0.74\n", "parity"),
    ("2\ncharge=3\nH 0 0 0\nH 0 0 0.74\n", "leaves -1 electrons"),
    ("2\ncharge=abc\nH 0 0 0\nH 0 0 0.74\n", "non-numeric charge"),
])
def test_bad_xyz_gives_one_clear_value_error(tmp_path, text, message):
    path = write(tmp_path, "bad.xyz", text)
    with pytest.raises(ValueError, match=message) as info:
        read_structures(path)
    assert "\n" not in str(info.value)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_structures(tmp_path / "nope.xyz")
    with pytest.raises(ValueError, match="unknown file type"):
        read_structures(write(tmp_path, "a.pdbx", "x"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no structure files"):
        read_structures(tmp_path / "empty")


def test_sdf_reader_with_charges_radicals_and_duplicate_names(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    path = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(path))
    for smiles in ("CCO", "CCO", "C[NH3+]", "[CH3]"):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=7)
        mol.SetProp("_Name", "same" if smiles == "CCO" else smiles)
        writer.write(mol)
    writer.close()
    structures = read_structures(path)
    assert [s.id for s in structures] == ["same:0", "same:1", "C[NH3+]", "[CH3]"]
    assert structures[2].charge == 1 and structures[2].spin == 0
    assert structures[3].spin == 1 and structures[3].formula == "CH3"


def test_bad_sdf_record(tmp_path):
    path = write(tmp_path, "bad.sdf", "not a molfile\n\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n$$$$\n")
    with pytest.raises(ValueError, match="cannot read record 0"):
        read_structures(path)


def test_ase_db_and_folder(tmp_path):
    import ase.build
    import ase.db

    db = ase.db.connect(str(tmp_path / "set.db"))
    db.write(ase.build.molecule("H2O"), name="water")
    db.write(ase.build.molecule("CH3"), spin=1)
    write(tmp_path, "nh3.xyz", "4\n\nN 0 0 0.1\nH 0.94 0 -0.2\nH -0.47 0.81 -0.2\nH -0.47 -0.81 -0.2\n")
    write(tmp_path, "notes.txt", "ignored")
    structures = read_structures(tmp_path)
    assert [s.id for s in structures] == ["nh3", "water", "set:1"]
    assert structures[2].spin == 1
    with pytest.raises(ValueError, match="as an ASE database"):
        read_structures(write(tmp_path, "garbage.db", "garbage"))


def test_structure_validation_direct():
    with pytest.raises(ValueError, match="has no atoms"):
        Structure("e", np.zeros(0, int), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="shape"):
        Structure("s", [1, 1], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown atomic number"):
        Structure("z", [0, 1], [[0, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="infinite"):
        Structure("i", [1, 1], [[0, 0, 0], [0, 0, np.inf]])
    s = Structure("ok", [8, 1, 1], [[0, 0, 0], [0, 0.76, 0.59], [0, -0.76, 0.59]])
    with pytest.raises(ValueError):
        s.positions[0, 0] = 1.0  # read-only arrays


def test_atoms_round_trip_and_periodic_refused():
    import ase.build

    atoms = ase.build.molecule("NH3")
    s = from_atoms(atoms, "nh3")
    back = to_atoms(s)
    np.testing.assert_allclose(back.positions, atoms.positions)
    assert back.info["spin"] == 0
    atoms.pbc = True
    atoms.cell = [10, 10, 10]
    with pytest.raises(ValueError, match="periodic"):
        from_atoms(atoms, "nh3")


def test_to_mole_units_charge_spin_and_basis_errors():
    from pyscf.data.nist import BOHR

    oh = Structure("oh", [8, 1], [[0, 0, 0], [0, 0, 0.97]], charge=0, spin=1)
    mol = to_mole(oh, "sto-3g")
    assert mol.spin == 1 and mol.nelectron == 9 and mol.nao == 6
    np.testing.assert_allclose(mol.atom_coords()[1, 2] * BOHR, 0.97, atol=1e-10)
    with pytest.raises(ValueError, match="unknown basis set 'no-such-basis'"):
        to_mole(oh, "no-such-basis")
    iodide = Structure("hi", [53, 1], [[0, 0, 0], [0, 0, 1.6]])
    with pytest.raises(UnsupportedElementError, match="I not covered by the basis set '6-31g'") as info:
        to_mole(iodide, "6-31g")
    assert info.value.elements == ["I"]


def test_from_atoms_reads_charge_and_spin_from_initial_charges_and_moments():
    import ase.build

    methyl = from_atoms(ase.build.molecule("CH3"), "ch3")  # G2 sets one unpaired electron as magmom
    assert methyl.spin == 1 and methyl.charge == 0
    atoms = ase.build.molecule("H2O")
    atoms.set_initial_charges([1, 0, 0])
    cation = from_atoms(atoms, "h2o+", spin=1)
    assert cation.charge == 1 and cation.nelectron == 9
    atoms.info["charge"] = 0
    assert from_atoms(atoms, "h2o").charge == 0  # info wins over per-atom charges
