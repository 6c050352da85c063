"""Molecular structures: one validated record type, file readers, and the boundary to PySCF.

A :class:`Structure` holds atomic numbers, Cartesian positions in Ångström (ASE convention), the total charge and
the spin (2S = N_alpha - N_beta, PySCF's convention). Readers accept XYZ / extended XYZ (several frames; ``charge=``
and ``spin=`` keys in the comment line, as ASE reads them), SDF / MOL files (formal charges and radical electrons
from RDKit), ASE databases, and folders of such files. Every structure is validated on construction, and each
problem is reported as a one-sentence ``ValueError``. :func:`to_mole` is the one place where Ångström become
PySCF's input.

Example
-------
>>> structures = read_structures("molecules.xyz")
>>> mol = to_mole(structures[0], "def2-svp")
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scfguess.errors import UnsupportedElementError

__all__ = [
    "Structure",
    "STRUCTURE_SUFFIXES",
    "read_structures",
    "from_atoms",
    "to_atoms",
    "to_mole",
    "check_basis",
    "check_charge_spin",
    "check_mole",
    "ecp_core_electrons",
    "valence_electrons",
    "shell_vacancies",
]

#: File name endings the readers understand (a folder is read file by file, sorted by name).
STRUCTURE_SUFFIXES: tuple[str, ...] = (".xyz", ".extxyz", ".sdf", ".mol", ".db")

#: Two atoms closer than this (Å) are taken to sit at the same position.
MIN_DISTANCE = 0.1

_MAX_Z = 118

#: Atomic numbers of the noble gases: the closed shells that extra electrons of an anion can at most complete.
_NOBLE_GASES = (2, 10, 18, 36, 54, 86, 118)


@dataclass(frozen=True, eq=False)
class Structure:
    """One molecule: atoms, positions (Å), charge and spin, validated on construction.

    Attributes
    ----------
    id : str
        Identifier, unique within a set (e.g. ``"nci-12"`` or ``"file.xyz:3"``).
    numbers : ndarray, shape (n_atoms,), int64
        Atomic numbers.
    positions : ndarray, shape (n_atoms, 3), float64
        Cartesian coordinates in Å.
    charge : int
        Total charge in units of e.
    spin : int
        2S = N_alpha - N_beta, PySCF's convention; negative means more beta than alpha electrons, as in PySCF.
    source : str
        Where the structure came from (file and frame, SMILES, collection name).

    Raises
    ------
    ValueError
        Empty structure, mismatched shapes, unknown atomic number, non-finite coordinates, two atoms at the
        same position, or a charge or spin refused by :func:`check_charge_spin` (all electrons counted; the
        electrons an ECP replaces are checked again by :func:`to_mole`).
    """

    id: str
    numbers: np.ndarray
    positions: np.ndarray
    charge: int = 0
    spin: int = 0
    source: str = field(default="")

    def __post_init__(self):
        numbers = np.asarray(self.numbers)
        positions = np.asarray(self.positions, dtype=np.float64)
        where = f"structure {self.id!r}"
        if numbers.ndim != 1 or numbers.size == 0:
            raise ValueError(f"{where} has no atoms.")
        if not np.issubdtype(numbers.dtype, np.integer):
            if not np.all(np.equal(np.mod(numbers, 1), 0)):
                raise ValueError(f"{where} has non-integer atomic numbers.")
        numbers = numbers.astype(np.int64)
        if positions.shape != (numbers.size, 3):
            raise ValueError(f"{where} has positions of shape {positions.shape}, expected ({numbers.size}, 3).")
        bad = numbers[(numbers < 1) | (numbers > _MAX_Z)]
        if bad.size:
            raise ValueError(f"{where} has unknown atomic number(s) {sorted(set(bad.tolist()))}.")
        if not np.all(np.isfinite(positions)):
            raise ValueError(f"{where} has NaN or infinite coordinates.")
        if int(self.charge) != self.charge or int(self.spin) != self.spin:
            raise ValueError(f"{where} has a non-integer charge or spin ({self.charge}, {self.spin}).")
        charge, spin = int(self.charge), int(self.spin)
        check_charge_spin(numbers, charge, spin, where=where)
        close = _close_pair(positions, MIN_DISTANCE) if numbers.size > 1 else None
        if close is not None:
            i, j, d = close
            raise ValueError(f"{where} has atoms {i} and {j} at the same position ({d:.3g} Å apart).")
        numbers.setflags(write=False)
        positions = positions.copy()
        positions.setflags(write=False)
        object.__setattr__(self, "numbers", numbers)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "charge", charge)
        object.__setattr__(self, "spin", spin)

    @property
    def natoms(self) -> int:
        """Number of atoms."""
        return int(self.numbers.size)

    @property
    def nelectron(self) -> int:
        """Number of electrons (sum of atomic numbers minus charge)."""
        return int(self.numbers.sum()) - self.charge

    @property
    def symbols(self) -> list[str]:
        """Element symbols, one per atom."""
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.numbers]

    @property
    def formula(self) -> str:
        """Hill formula (``"C9H8O4"``)."""
        from ase.formula import Formula

        return Formula.from_list(self.symbols).format("hill")

    def geometry_hash(self) -> str:
        """SHA-256 of numbers, positions (rounded to 1e-6 Å), charge and spin; identifies the exact geometry."""
        import hashlib

        h = hashlib.sha256()
        h.update(self.numbers.astype("<i8").tobytes())
        h.update(np.round(self.positions, 6).astype("<f8").tobytes())
        h.update(f"{self.charge}|{self.spin}".encode())
        return h.hexdigest()


def _close_pair(positions: np.ndarray, cutoff: float) -> tuple[int, int, float] | None:
    """First pair of atoms closer than ``cutoff`` (Å) as ``(i, j, distance)``, or None; KD-tree, O(n log n)."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(positions).query_pairs(r=cutoff, output_type="ndarray")
    if len(pairs) == 0:
        return None
    i, j = sorted(pairs[np.lexsort(pairs.T[::-1])][0].tolist())
    return i, j, float(np.linalg.norm(positions[i] - positions[j]))


def valence_electrons(z: int, ecp_core: int = 0) -> int:
    """Electrons of element ``z`` outside its core: the ones a positive charge may remove.

    The core is PySCF's chemical core (``pyscf.data.elements.chemcore_atm``, the frozen core of correlated methods:
    He for C-Ne, Ne for Na-Ar, [Ar]3d for Ga-Kr ...), or the electrons an ECP replaces where that is more.

    Parameters
    ----------
    z : int
        Atomic number.
    ecp_core : int
        Electrons replaced by an effective core potential on this atom (0 without one).

    Returns
    -------
    int
        ``z - max(chemical core, ecp_core)``; O 6, Na 9 (2s2p kept, as PySCF keeps them), I 17.
    """
    from pyscf.data.elements import chemcore_atm

    return int(z) - max(2 * int(chemcore_atm[int(z)]), int(ecp_core))


def shell_vacancies(z: int) -> int:
    """Electrons element ``z`` can take before it reaches the next noble-gas configuration (H 1, O 2, P 3, Ne 0)."""
    z = int(z)
    return next(g for g in _NOBLE_GASES if g >= z) - z


def check_charge_spin(numbers, charge: int, spin: int, ecp_core=None, where: str = "the molecule") -> int:
    """Refuse a charge or spin (2S) the molecule cannot plausibly have; return its electron count.

    The rules, applied before any SCF because PySCF runs any charge it is given (water with charge -30
    "converges", to +151 Hartree, an energy of nothing physical):

    1. At least one electron must remain in the calculation. Electrons an ECP replaces are not in it: iodine under
       the def2 ECP has 25 electrons, not 53.
    2. A positive charge removes valence electrons only (:func:`valence_electrons`, counted under the ECP where
       it replaces more than the chemical core). A single atom may lose all of them (Na⁺, Mg²⁺, Al³⁺ are closed
       shells); two or more atoms must keep at least one, since without valence electrons nothing binds them
       (water +8 is three bare cores flying apart).
    3. A negative charge adds at most the electrons that bring every atom to its next noble-gas shell
       (:func:`shell_vacancies`: 1 per H and halogen, 2 per O, 3 per P, 0 per noble gas). A further electron
       would have to sit in the next, unbound shell: no bound state exists, and the SCF only finds one in the
       limits of a finite basis. H⁻ (1 allowed), PO₄³⁻ (11), ATP⁴⁻ (C10H12N5O13P3, 86) pass; water −30 (4) does not.
    4. ``|2S|`` cannot exceed the electron count, and ``2S`` must have its parity. A negative ``2S`` (more beta
       than alpha electrons) is accepted, as PySCF accepts it; it gives the energy of ``+|2S|``.

    Parameters
    ----------
    numbers : array_like of int
        Atomic numbers.
    charge, spin : int
        Total charge (e) and 2S = N_alpha - N_beta.
    ecp_core : array_like of int, optional
        Electrons each atom's ECP replaces (None: all-electron).
    where : str
        How the molecule is named in the message (``"structure 'water'"``).

    Returns
    -------
    int
        Electrons in the calculation (ECP cores excluded).

    Raises
    ------
    ValueError
        One sentence naming the rule that failed.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    core = np.zeros(numbers.size, dtype=np.int64) if ecp_core is None else np.asarray(ecp_core, dtype=np.int64)
    ecp_note = ""
    if core.any():
        ecp_note = f", with {int(core.sum())} core electrons replaced by ECPs"
    nelectron = int(numbers.sum() - core.sum()) - charge
    if nelectron <= 0:
        raise ValueError(f"{where} has charge {charge}, which leaves {nelectron} electrons{ecp_note}.")
    if charge > 0:
        valence = sum(valence_electrons(z, c) for z, c in zip(numbers.tolist(), core.tolist()))
        keep = 1 if numbers.size > 1 else 0
        if valence - charge < keep:
            need = ("keep at least one valence electron to hold its atoms together" if keep
                    else "lose valence electrons only")
            raise ValueError(f"{where} has charge {charge}, more than its {valence} valence electrons allow: "
                             f"a {'molecule' if keep else 'single atom'} must {need}.")
    elif charge < 0:
        room = sum(shell_vacancies(z) for z in numbers.tolist())
        if -charge > room:
            raise ValueError(f"{where} has charge {charge}, more extra electrons than it can bind: its atoms can "
                             f"take at most {room} before every one has a noble-gas shell.")
    if abs(spin) > nelectron:
        raise ValueError(f"{where} has spin {spin} (2S), which needs more electrons than the {nelectron} it has "
                         f"(charge {charge}{ecp_note}); |2S| cannot exceed the electron count.")
    if (nelectron - spin) % 2:
        raise ValueError(f"{where} has spin {spin} (2S), which is impossible with {nelectron} electrons "
                         f"(charge {charge}): 2S must have the parity of the electron count (set the charge or "
                         "the spin).")
    return nelectron


def ecp_core_electrons(symbols, ecp) -> list[int]:
    """Electrons an ECP replaces on each atom.

    Parameters
    ----------
    symbols : list of str
        Element symbols, one per atom.
    ecp : str or dict
        ``Mole.ecp``: one ECP name for all atoms, or element symbol -> ECP name. Entries that are not names
        (explicit ECP data) count as no core here; PySCF checks them when it builds the molecule.

    Returns
    -------
    list of int
    """
    from pyscf import gto

    if not ecp:
        return [0] * len(symbols)
    cache = {}
    out = []
    for s in symbols:
        name = ecp if isinstance(ecp, str) else (ecp.get(s) if isinstance(ecp, dict) else None)
        if not isinstance(name, str):
            out.append(0)
            continue
        if (s, name) not in cache:
            try:
                data = gto.basis.load_ecp(name, s)
                cache[s, name] = int(data[0]) if data else 0
            except Exception:  # noqa: BLE001 - an unknown ECP name is reported by Mole.build
                cache[s, name] = 0
        out.append(cache[s, name])
    return out


def check_mole(mol) -> int:
    """:func:`check_charge_spin` for a built ``pyscf.gto.Mole`` (its charge, spin and ECPs); returns its electrons.

    Ghost and dummy atoms (nuclear charge 0, as in counterpoise calculations) carry no electrons and are left out.
    """
    core = np.array([int(mol.atom_nelec_core(i)) for i in range(mol.natm)], dtype=np.int64)
    real = (np.asarray(mol.atom_charges()) + core) > 0
    if not real.any():
        raise ValueError("the molecule has no atoms with a nucleus (only ghost or dummy atoms).")
    return check_charge_spin(atomic_numbers(mol)[real], int(mol.charge), int(mol.spin), core[real],
                             where="the molecule")


def from_atoms(atoms, id: str, *, charge: int | None = None, spin: int | None = None, source: str = "") -> Structure:
    """Structure from an ``ase.Atoms``.

    Parameters
    ----------
    atoms : ase.Atoms
        Positions in Å. Periodic structures (any ``pbc`` True) are refused.
    id : str
        Identifier of the structure.
    charge : int, optional
        Default: ``atoms.info["charge"]``, else the rounded sum of the initial atomic charges (0 without them). A
        bare ``charge`` or ``spin`` word in an XYZ comment (ASE reads it as ``True``) is not a value.
    spin : int, optional
        2S. Default: ``atoms.info["spin"]``, else the rounded absolute sum of the initial magnetic moments
        (ASE's total moment is N_alpha - N_beta in Bohr magnetons), 0 without them.
    source : str
        Provenance text.

    Raises
    ------
    ValueError
        Periodic structure, or any of the problems :class:`Structure` checks.
    """
    if np.any(atoms.pbc):
        raise ValueError(f"structure {id!r} is periodic; only molecules (no periodic boundary conditions) are supported.")
    # A bare word in an XYZ comment ("no charge given") reaches ASE's info as True: it gives no value.
    info = {k: v for k, v in atoms.info.items() if not isinstance(v, (bool, np.bool_))}
    if charge is None:
        charge = (_info_int(info, "charge", id) if "charge" in info
                  else int(round(float(atoms.get_initial_charges().sum()))))
    if spin is None:
        spin = (_info_int(info, "spin", id) if "spin" in info
                else int(round(abs(float(atoms.get_initial_magnetic_moments().sum())))))
    return Structure(id=id, numbers=atoms.numbers.copy(), positions=atoms.positions.copy(), charge=charge,
                     spin=spin, source=source)


def _info_int(info: dict, key: str, id: str) -> int:
    value = info.get(key, 0)
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"structure {id!r} has a non-numeric {key} {value!r}.") from None
    if not np.isfinite(as_float) or as_float != int(as_float):
        raise ValueError(f"structure {id!r} has a non-integer {key} {value!r}.")
    return int(as_float)


def to_atoms(structure: Structure):
    """``ase.Atoms`` (positions in Å) with ``info["charge"]``, ``info["spin"]`` and ``info["id"]`` set."""
    import ase

    return ase.Atoms(numbers=structure.numbers, positions=structure.positions,
                     info={"charge": structure.charge, "spin": structure.spin, "id": structure.id})


def read_structures(path: str | os.PathLike, *, charge: int | None = None,
                    spin: int | None = None) -> list[Structure]:
    """Read every structure of a file or folder.

    Parameters
    ----------
    path : str or PathLike
        ``.xyz`` / ``.extxyz`` (all frames), ``.sdf`` / ``.mol`` (all records), ``.db`` (ASE database, all rows),
        or a folder whose files with these endings are read in name order (not recursively). XYZ files are UTF-8
        text; a leading byte-order mark is ignored.
    charge, spin : int, optional
        Total charge and 2S for every structure, in place of what the file says (extXYZ ``charge=``/``spin=``,
        SDF formal charges and radicals, ASE-db keys; 0 where it says nothing). They are applied before any check,
        so ``charge=1`` makes a plain-XYZ NH4 the closed-shell NH4+ it is.

    Returns
    -------
    list of Structure
        Ids are ``"<stem>"`` for a one-structure file, ``"<stem>:<i>"`` (i from 0) for several; a structure's
        own name (extXYZ ``name=``/``id=``, SDF title, ASE-db ``name``) is used instead when given, with
        ``":<i>"`` appended where several structures of one file share a name.

    Raises
    ------
    ValueError
        Missing, empty, truncated or unreadable file, unknown ending, empty folder, or an invalid structure.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in STRUCTURE_SUFFIXES)
        if not files:
            raise ValueError(f"folder {str(path)!r} holds no structure files ({', '.join(STRUCTURE_SUFFIXES)}).")
        out = []
        for f in files:
            out.extend(read_structures(f, charge=charge, spin=spin))
        _check_unique(out, path)
        return out
    if not path.exists():
        raise ValueError(f"structure file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in STRUCTURE_SUFFIXES:
        raise ValueError(f"cannot read {str(path)!r}: unknown file type (expected one of {', '.join(STRUCTURE_SUFFIXES)}).")
    if path.stat().st_size == 0:
        raise ValueError(f"structure file {str(path)!r} is empty.")
    if suffix in (".xyz", ".extxyz"):
        structures = _read_xyz(path, charge, spin)
    elif suffix in (".sdf", ".mol"):
        structures = _read_sdf(path, charge, spin)
    else:
        structures = _read_db(path, charge, spin)
    if not structures:
        raise ValueError(f"structure file {str(path)!r} contains no structures.")
    return _unique_ids(structures)


def _check_unique(structures: list[Structure], path: Path) -> None:
    seen = set()
    for s in structures:
        if s.id in seen:
            raise ValueError(f"{str(path)!r} holds two structures with the id {s.id!r}.")
        seen.add(s.id)


def _unique_ids(structures: list[Structure]) -> list[Structure]:
    """Append ``":<i>"`` (position in the file) to ids that occur more than once in one file."""
    from collections import Counter
    from dataclasses import replace

    counts = Counter(s.id for s in structures)
    return [replace(s, id=f"{s.id}:{i}") if counts[s.id] > 1 else s for i, s in enumerate(structures)]


def _frame_id(path: Path, i: int, n: int, name) -> str:
    if name not in (None, ""):
        return str(name)
    return path.stem if n == 1 else f"{path.stem}:{i}"


def _xyz_text(path: Path) -> str:
    """The text of an XYZ file: UTF-8, a byte-order mark dropped; a clear error naming the line otherwise."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"cannot read {str(path)!r}: line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                         "save the file as UTF-8.") from None


def _read_xyz(path: Path, charge=None, spin=None) -> list[Structure]:
    import io

    from ase.io import read

    text = _xyz_text(path)
    try:
        frames = read(io.StringIO(text), index=":", format="extxyz")
    except Exception as exc:  # ASE raises XYZError, ValueError, KeyError (unknown symbol), IndexError ...
        raise ValueError(f"cannot read {str(path)!r} as (extended) XYZ: {_reason(exc)}.") from None
    out = []
    for i, atoms in enumerate(frames):
        name = atoms.info.get("name", atoms.info.get("id"))
        sid = _frame_id(path, i, len(frames), name)
        out.append(from_atoms(atoms, sid, charge=charge, spin=spin, source=f"{path}#{i}"))
    return out


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"unknown element symbol {exc.args[0]!r}" if exc.args else "unknown element symbol"
    text = str(exc).strip().rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_sdf(path: Path, charge=None, spin=None) -> list[Structure]:
    from scfguess.errors import require

    Chem = require("rdkit.Chem", "bench", "reading SDF/MOL files")
    RDLogger = require("rdkit.RDLogger", "bench", "reading SDF/MOL files")

    RDLogger.DisableLog("rdApp.*")
    try:
        supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
        out = []
        n = len(supplier)
        for i in range(n):
            mol = supplier[i]
            if mol is None:
                raise ValueError(f"cannot read record {i} of {str(path)!r}: RDKit could not parse it.")
            if mol.GetNumConformers() == 0 or mol.GetNumAtoms() == 0:
                raise ValueError(f"record {i} of {str(path)!r} has no atoms or no coordinates.")
            name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
            sid = _frame_id(path, i, n, name)
            radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
            out.append(Structure(
                id=sid,
                numbers=np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64),
                positions=mol.GetConformer().GetPositions(),
                charge=Chem.GetFormalCharge(mol) if charge is None else charge,
                spin=radicals if spin is None else spin,
                source=f"{path}#{i}",
            ))
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc}.") from None
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def _read_db(path: Path, charge=None, spin=None) -> list[Structure]:
    import ase.db

    try:
        rows = list(ase.db.connect(str(path), type="db").select())
    except Exception as exc:  # sqlite3.DatabaseError for a file that is not a database, and friends
        raise ValueError(f"cannot read {str(path)!r} as an ASE database: {_reason(exc)}.") from None
    out = []
    for i, row in enumerate(rows):
        kv = row.key_value_pairs
        sid = _frame_id(path, i, len(rows), kv.get("name", kv.get("id")))
        atoms = row.toatoms()
        atoms.info.update({k: kv[k] for k in ("charge", "spin") if k in kv})
        out.append(from_atoms(atoms, sid, charge=charge, spin=spin, source=f"{path}#{row.id}"))
    return out


def check_basis(basis, symbols) -> None:
    """Check that PySCF knows ``basis`` for every element in ``symbols``.

    Parameters
    ----------
    basis : str or dict
        A PySCF basis name (``"def2-svp"``) or a per-element dict as ``pyscf.gto.Mole.basis`` accepts.
    symbols : iterable of str
        Element symbols.

    Raises
    ------
    ValueError
        The basis name is unknown.
    UnsupportedElementError
        The basis has no functions for some of the elements (a ``ValueError`` subclass).
    """
    from pyscf import gto
    from pyscf.lib.exceptions import BasisNotFoundError

    if isinstance(basis, dict):
        return  # a dict basis is checked by Mole.build, which names the element itself
    missing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for symbol in sorted(set(symbols)):
            try:
                shells = gto.basis.load(basis, symbol)
            except BasisNotFoundError as exc:
                if "Unknown basis" in str(exc):
                    raise ValueError(f"unknown basis set {basis!r}.") from None
                missing.append(symbol)
                continue
            except Exception:  # noqa: BLE001 - PySCF's parsers raise assorted errors on unknown names
                raise ValueError(f"unknown basis set {basis!r}.") from None
            if not shells:
                missing.append(symbol)
    if missing:
        raise UnsupportedElementError(missing, what=f"the basis set {basis!r}")


#: Lightest element for which the def2 bases expect an effective core potential (Rb, Z = 37).
FIRST_ECP_ELEMENT = 37


def default_ecp(basis, symbols) -> dict:
    """The ECP a basis expects for these elements: ``{symbol: basis}`` for def2 bases from Rb (Z = 37) on.

    PySCF adds none by itself: iodine with def2-SVP and no ``ecp=`` runs all-electron in a basis made for an ECP.

    Parameters
    ----------
    basis : str or dict
        Orbital basis; only a def2 basis name implies ECPs.
    symbols : iterable of str

    Returns
    -------
    dict
        Element symbol -> ECP name; empty when none is expected.
    """
    from pyscf import gto

    if not (isinstance(basis, str) and basis.lower().replace("_", "-").startswith("def2-")):
        return {}
    return {s: basis for s in sorted(set(symbols)) if gto.charge(s) >= FIRST_ECP_ELEMENT}


def atomic_numbers(mol) -> np.ndarray:
    """Atomic numbers of a ``pyscf.gto.Mole``, (natm,) int, from the element symbols.

    Unlike ``mol.atom_charges()`` this ignores ECPs (``atom_charges`` gives 25 for iodine under the def2 ECP).
    """
    from pyscf import gto

    return np.array([gto.charge(mol.atom_pure_symbol(i)) for i in range(mol.natm)], dtype=int)


def to_mole(structure: Structure, basis="def2-svp", *, max_memory: int = 4000, verbose: int = 0, **kwargs):
    """Build a ``pyscf.gto.Mole`` from a structure (Å → PySCF, the unit boundary).

    Parameters
    ----------
    structure : Structure
        The molecule; its charge and spin (2S) are passed on.
    basis : str or dict
        Orbital basis.
    max_memory : int
        PySCF memory limit in MB (set explicitly, not read from a config file).
    verbose : int
        PySCF verbosity.
    **kwargs
        Further ``Mole`` attributes (``cart``, ``ecp`` ...); ``ecp`` defaults to :func:`default_ecp`.

    Returns
    -------
    pyscf.gto.Mole
        A built molecule, ``unit="Angstrom"``.

    Raises
    ------
    ValueError
        Unknown basis; :class:`~scfguess.errors.UnsupportedElementError` when the basis lacks an element; a charge
        or spin that :func:`check_charge_spin` refuses once the electrons the ECPs replace are left out.
    """
    from pyscf import gto

    check_basis(basis, structure.symbols)
    ecp = kwargs.pop("ecp", default_ecp(basis, structure.symbols))
    check_charge_spin(structure.numbers, structure.charge, structure.spin,
                      ecp_core_electrons(structure.symbols, ecp), where=f"structure {structure.id!r} in {basis}")
    mol = gto.Mole()
    mol.atom = [(s, tuple(p)) for s, p in zip(structure.symbols, structure.positions.tolist())]
    mol.unit = "Angstrom"
    mol.basis = basis
    mol.charge = structure.charge
    mol.spin = structure.spin
    mol.max_memory = max_memory
    mol.verbose = verbose
    mol.output = None
    mol.ecp = ecp
    for key, value in kwargs.items():
        setattr(mol, key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mol.build(dump_input=False, parse_arg=False)
    return mol
