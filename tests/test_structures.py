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


# ---------------------------------------------------------------- charge and spin rules

NH4_PLAIN = ("5\nammonium, no charge in the file\nN 0 0 0\nH 0.629 0.629 0.629\nH -0.629 -0.629 0.629\n"
             "H -0.629 0.629 -0.629\nH 0.629 -0.629 -0.629\n")
ACETATE_PLAIN = ("7\n\nC 0 0 0\nC 1.52 0 0\nO 2.15 1.08 0\nO 2.15 -1.08 0\nH -0.39 1.02 0\nH -0.39 -0.51 0.88\n"
                 "H -0.39 -0.51 -0.88\n")


def _spread(numbers):
    """A structure with the given atoms on a 1.5 Å grid (the charge rules look at atoms, not at the geometry)."""
    grid = [(i, j, k) for i in range(4) for j in range(4) for k in range(4)]
    return np.array(grid[:len(numbers)], dtype=float) * 1.5


def test_charge_and_spin_given_to_the_reader_are_applied_before_the_checks(tmp_path):
    nh4 = write(tmp_path, "nh4.xyz", NH4_PLAIN)
    with pytest.raises(ValueError, match="impossible with 11 electrons"):
        read_structures(nh4)
    (s,) = read_structures(nh4, charge=1)
    assert s.charge == 1 and s.spin == 0 and s.nelectron == 10
    (acetate,) = read_structures(write(tmp_path, "acetate.xyz", ACETATE_PLAIN), charge=-1)
    assert acetate.charge == -1 and acetate.nelectron == 32
    (radical,) = read_structures(nh4, spin=1)  # neutral NH4 as a doublet
    assert radical.charge == 0 and radical.spin == 1
    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder, "a.xyz", NH4_PLAIN)
    assert [s.charge for s in read_structures(folder, charge=1)] == [1]


def test_sdf_formal_charge_is_replaced_by_the_given_charge(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("[NH4+]"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    path = tmp_path / "nh4.sdf"
    with Chem.SDWriter(str(path)) as writer:
        writer.write(mol)
    assert read_structures(path)[0].charge == 1
    assert read_structures(path, charge=1, spin=0)[0].charge == 1
    with pytest.raises(ValueError, match="impossible with 11 electrons"):
        read_structures(path, charge=0)


ATP = [6] * 10 + [1] * 12 + [7] * 5 + [8] * 13 + [15] * 3


@pytest.mark.parametrize("name, numbers, charge", [
    ("hydride", [1], -1), ("phosphate", [15, 8, 8, 8, 8], -3), ("ATP", ATP, -4), ("water", [8, 1, 1], -4),
    ("sodium", [11], 1), ("aluminium", [13], 3), ("water", [8, 1, 1], 7), ("hydroxide", [8, 1], -1),
])
def test_plausible_charges_are_accepted(name, numbers, charge):
    from scfguess.structures import check_charge_spin

    spin = (sum(numbers) - charge) % 2
    s = Structure(name, numbers, _spread(numbers), charge=charge, spin=spin)
    assert s.charge == charge
    assert check_charge_spin(numbers, charge, spin) == sum(numbers) - charge


@pytest.mark.parametrize("numbers, charge, match", [
    ([8, 1, 1], -30, "charge -30, more extra electrons than it can bind: its atoms can take at most 4"),
    ([8, 1, 1], -5, "at most 4"),
    ([8, 1, 1], 8, "charge 8, more than its 8 valence electrons allow: a molecule must keep at least one"),
    ([11], 10, "charge 10, more than its 9 valence electrons allow: a single atom must lose valence electrons only"),
    ([2], -1, "at most 0"),
    ([1, 1], 2, "leaves 0 electrons"),
])
def test_implausible_charges_are_refused_with_one_sentence(numbers, charge, match):
    with pytest.raises(ValueError, match=match) as info:
        Structure("m", numbers, _spread(numbers), charge=charge, spin=(sum(numbers) - charge) % 2)
    assert "\n" not in str(info.value) and str(info.value).startswith("structure 'm' has charge")


def test_spin_larger_than_the_electrons_says_so_and_negative_spin_follows_pyscf():
    water = [[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]]
    with pytest.raises(ValueError, match="spin 12 .* needs more electrons than the 10 it has") as info:
        Structure("w", [8, 1, 1], water, spin=12)
    assert "parity" not in str(info.value)
    with pytest.raises(ValueError, match="spin 1 .* parity"):
        Structure("w", [8, 1, 1], water, spin=1)
    triplet = Structure("w", [8, 1, 1], water, spin=-2)
    assert triplet.spin == -2
    mol = to_mole(triplet, "sto-3g")
    assert mol.spin == -2 and mol.nelec == (4, 6)


def test_ecp_core_electrons_are_not_counted():
    """Iodine under the def2 ECP has 25 electrons: the limits of to_mole use those, not 53."""
    from scfguess.structures import check_charge_spin, valence_electrons

    hi = Structure("hi", [1, 53], [[0, 0, 0], [0, 0, 1.61]], spin=28)  # fine with all 54 electrons
    with pytest.raises(ValueError, match=r"spin 28 .* more electrons than the 26 it has .*28 core electrons "
                                         r"replaced by ECPs"):
        to_mole(hi, "def2-svp")
    iodide = to_mole(Structure("i-", [53], [[0, 0, 0]], charge=-1), "def2-svp")
    assert iodide.nelectron == 26
    assert valence_electrons(53) == valence_electrons(53, ecp_core=28) == 17
    assert valence_electrons(79, ecp_core=60) == 19  # gold: the ECP replaces more than the chemical core
    with pytest.raises(ValueError, match="leaves -1 electrons, with 60 core electrons replaced by ECPs"):
        check_charge_spin([79], 20, 1, ecp_core=[60])
    assert check_charge_spin([79], 20, 1) == 59


def test_xyz_with_a_byte_order_mark_or_invalid_utf8(tmp_path):
    text = "3\nwater\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n"
    bom = tmp_path / "bom.xyz"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    (s,) = read_structures(bom)
    assert s.formula == "H2O"
    bad = tmp_path / "latin1.xyz"
    bad.write_bytes(text.replace("water", "w\xe4ter").encode("latin-1"))
    with pytest.raises(ValueError, match=r"line 2 is not UTF-8 text \(byte 0xe4\); save the file as UTF-8") as info:
        read_structures(bad)
    assert "\n" not in str(info.value)


def test_a_bare_word_charge_in_a_plain_comment_is_not_charge_one(tmp_path):
    (s,) = read_structures(write(tmp_path, "h2.xyz", "2\nno charge or spin given here\nH 0 0 0\nH 0 0 0.74\n"))
    assert s.charge == 0 and s.spin == 0
