"""Built-in molecule sets of SCFbench and the resolution of set names and paths to structures.

Every set is a list of :class:`Entry` objects that know their id and atom count *without* building a
geometry, so ``scfbench sets`` and ``--limit`` / ``--sample`` stay cheap; :meth:`Entry.build` makes the
:class:`~scfguess.structures.Structure` (RDKit ETKDG + MMFF with a fixed seed, cached on disk by
:func:`scfbench.nci.embed`).

Sets
----
``nci-le20`` ... ``nci-gt100``
    The NCI evaluation molecules (:func:`scfbench.nci.evaluation_molecules`, every second eligible molecule),
    by atom count including hydrogens. The other half of the NCI list is the training pool; these sets never
    contain a training molecule.
``g2``
    ASE's G2 collection, the closed-shell neutral molecules (no initial magnetic moments, even electron count).
``s22``
    ASE's S22 dimers.
``peptides``
    Glycine and alanine oligomers built by RDKit from their sequence (30 to 902 atoms).
``polymers``
    Linear polyethylene H(CH2)nH and polypropylene H(CH2CH(CH3))nH oligomers (50 to 902 atoms).
``ions``
    Cations (protonated amines, quaternary ammonium) and anions (carboxylates, phenolates, sulfonates) of NCI
    evaluation molecules, 20-50 atoms, cations and anions alternating (:mod:`scfbench.variants`).
``cations``, ``anions``
    The cations and the anions of ``ions`` alone, in the same order (the first 10 anions are the anions of
    ``ions --limit 20``): e.g. anions at a diffuse basis, where minao itself is slow.
``radicals``
    Doublets: NCI evaluation molecules of 15-40 atoms with one hydrogen taken from a carbon.
``nci-halogen``
    NCI evaluation molecules with Br or I (:func:`scfbench.nci.halogen_molecules`), 20-40 atoms, one iodide after
    every two bromides while both last.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scfguess.structures import Structure, from_atoms, read_structures

__all__ = ["Entry", "SET_NAMES", "set_entries", "describe_sets", "resolve_molecules", "select"]

#: NCI evaluation sets: name -> inclusive atom-count bounds (None = open).
NCI_BINS: dict[str, tuple[int | None, int | None]] = {
    "nci-le20": (None, 20),
    "nci-21-25": (21, 25),
    "nci-26-40": (26, 40),
    "nci-41-60": (41, 60),
    "nci-61-100": (61, 100),
    "nci-gt100": (101, None),
}

#: Oligomer lengths: glycine Gly_n (7n + 2 atoms) and alanine Ala_n (10n + 2 atoms).
PEPTIDES: tuple[tuple[str, int], ...] = (
    ("G", 4), ("G", 8), ("G", 16), ("A", 10), ("A", 20), ("A", 40), ("A", 60), ("A", 90),
)

#: Polymer lengths: polyethylene H(CH2)nH (3n + 2 atoms), polypropylene H(C3H6)nH (9n + 2 atoms).
POLYMERS: tuple[tuple[str, int], ...] = (
    ("pe", 16), ("pe", 33), ("pe", 66), ("pe", 133), ("pe", 300),
    ("pp", 6), ("pp", 11), ("pp", 22), ("pp", 44), ("pp", 100),
)

#: Atom-count bounds of the ``ions``, ``radicals`` and ``nci-halogen`` sets (inclusive, after the change).
ION_ATOMS = (20, 50)
RADICAL_ATOMS = (15, 40)
HALOGEN_ATOMS = (20, 40)

SET_NAMES: tuple[str, ...] = (*NCI_BINS, "g2", "s22", "peptides", "polymers", "ions", "cations", "anions", "radicals",
                               "nci-halogen")

_DESCRIPTIONS = {
    **{name: "NCI evaluation molecules (neutral, H C N O F P S Cl), ETKDG+MMFF" for name in NCI_BINS},
    "g2": "ASE G2 collection, closed-shell neutral subset",
    "s22": "ASE S22 non-covalent dimers",
    "peptides": "glycine and alanine oligomers (RDKit), size scaling",
    "polymers": "polyethylene and polypropylene oligomers, size scaling",
    "ions": "cations and anions of NCI evaluation molecules (protonated amines, carboxylates, phenolates), 20-50 atoms",
    "cations": "the cations of ions alone (protonated amines, quaternary ammonium), same order",
    "anions": "the anions of ions alone (carboxylates, phenolates, sulfonates), same order",
    "radicals": "doublet radicals of NCI evaluation molecules (one C-H hydrogen removed), 15-40 atoms",
    "nci-halogen": "NCI evaluation molecules with Br or I (def2 ECP for I), 20-40 atoms",
}


@dataclass(frozen=True)
class Entry:
    """One molecule of a set, before its geometry is built.

    Attributes
    ----------
    id : str
        Molecule id, unique within the set.
    natoms : int
        Number of atoms including hydrogens.
    builder : callable
        ``builder() -> Structure``; deterministic.
    """

    id: str
    natoms: int
    builder: Callable[[], Structure]

    def build(self) -> Structure:
        """The structure (positions in Å)."""
        return self.builder()


def _smiles_structure(id: str, smiles: str, source: str, charge: int = 0, spin: int = 0) -> Structure:
    from scfbench.nci import embed

    return from_atoms(embed(smiles), id, charge=charge, spin=spin, source=source)


def _nci_entries(lo, hi) -> list[Entry]:
    from scfbench.nci import evaluation_molecules

    return [
        Entry(f"nci-{m.index}", m.natoms,
              functools.partial(_smiles_structure, f"nci-{m.index}", m.smiles, f"NCI first_5K id {m.nci_id}: {m.smiles}"))
        for m in evaluation_molecules(lo, hi)
    ]


def _collection_entries(name: str) -> list[Entry]:
    import ase.collections

    collection = getattr(ase.collections, name)
    out = []
    for key in collection.names:
        atoms = collection[key]
        if name == "g2" and (abs(atoms.get_initial_magnetic_moments()).sum() > 0 or atoms.numbers.sum() % 2):
            continue
        out.append(Entry(f"{name}-{key}", len(atoms),
                         functools.partial(_collection_structure, name, key)))
    return out


def _collection_structure(name: str, key: str) -> Structure:
    import ase.collections

    atoms = getattr(ase.collections, name)[key]
    return from_atoms(atoms, f"{name}-{key}", charge=0, spin=0, source=f"ase.collections.{name}['{key}']")


@functools.lru_cache(maxsize=None)
def _peptide_smiles(letter: str, n: int) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.MolFromSequence(letter * n))


def _polymer_smiles(kind: str, n: int) -> str:
    return "C" * n if kind == "pe" else "C" + "C(C)C" * (n - 1) + "C(C)"


def _heavy_to_natoms(smiles: str) -> int:
    from rdkit import Chem

    return Chem.AddHs(Chem.MolFromSmiles(smiles)).GetNumAtoms()


def _oligomer_entries(table, smiles_of, prefix: dict[str, str]) -> list[Entry]:
    out = []
    for kind, n in table:
        smiles = smiles_of(kind, n)
        sid = f"{prefix[kind]}{n}"
        out.append(Entry(sid, _heavy_to_natoms(smiles),
                         functools.partial(_smiles_structure, sid, smiles, f"{sid}: {smiles}")))
    return out


def _variant_entries(kinds: tuple[str, ...], bounds: tuple[int, int]) -> list[Entry]:
    """Ions (``kinds`` cation/anion, alternating) or radicals of NCI evaluation molecules within ``bounds`` atoms."""
    from scfbench.nci import evaluation_molecules
    from scfbench.variants import charged_variants, radical_variant

    queues: dict[str, list[Entry]] = {kind: [] for kind in kinds}
    for m in evaluation_molecules(bounds[0] - 1, bounds[1] + 1):
        key = f"nci-{m.index}"
        if kinds == ("radical",):
            found = [("radical", radical_variant(m.smiles, key), 0)]
        else:
            found = [v for v in charged_variants(m.smiles, key) if v[0] in kinds]
        for kind, smiles, charge in found:
            natoms = _heavy_to_natoms(smiles) if smiles else 0
            if not bounds[0] <= natoms <= bounds[1]:
                continue
            sid, spin = f"{key}-{kind}", int(kind == "radical")
            source = f"{kind} of NCI first_5K id {m.nci_id}: {smiles}"
            queues[kind].append(Entry(sid, natoms, functools.partial(_smiles_structure, sid, smiles, source,
                                                                     charge, spin)))
    out = []
    while any(queues.values()):
        for q in queues.values():
            if q:
                out.append(q.pop(0))
    return out


def _halogen_entries(lo: int, hi: int) -> list[Entry]:
    from scfbench.nci import halogen_molecules

    mols = [m for m in halogen_molecules() if m.is_evaluation and lo <= m.natoms <= hi]
    iodides = [m for m in mols if "I" in m.elements]
    bromides = [m for m in mols if "I" not in m.elements]
    order = []
    while iodides or bromides:
        order += bromides[:2] + iodides[:1]
        bromides, iodides = bromides[2:], iodides[1:]
    return [Entry(f"nci-halogen-{m.index}", m.natoms,
                  functools.partial(_smiles_structure, f"nci-halogen-{m.index}", m.smiles,
                                    f"NCI first_5K id {m.nci_id}: {m.smiles}"))
            for m in order]


@functools.lru_cache(maxsize=None)
def _entries(name: str) -> tuple[Entry, ...]:
    if name in NCI_BINS:
        return tuple(_nci_entries(*NCI_BINS[name]))
    if name in ("g2", "s22"):
        return tuple(_collection_entries(name))
    if name == "peptides":
        return tuple(_oligomer_entries(PEPTIDES, _peptide_smiles, {"G": "gly", "A": "ala"}))
    if name == "polymers":
        return tuple(_oligomer_entries(POLYMERS, _polymer_smiles, {"pe": "polyethylene-", "pp": "polypropylene-"}))
    if name == "ions":
        return tuple(_variant_entries(("cation", "anion"), ION_ATOMS))
    if name in ("cations", "anions"):  # the kind's entries of ``ions``, filtered: same order, one enumeration
        suffix = "-" + name.removesuffix("s")
        return tuple(e for e in _entries("ions") if e.id.endswith(suffix))
    if name == "radicals":
        return tuple(_variant_entries(("radical",), RADICAL_ATOMS))
    if name == "nci-halogen":
        return tuple(_halogen_entries(*HALOGEN_ATOMS))
    raise ValueError(f"unknown molecule set {name!r}; known sets: {', '.join(SET_NAMES)}, or a file or folder path.")


def set_entries(name: str) -> list[Entry]:
    """Entries of a built-in set, in a fixed order.

    Parameters
    ----------
    name : str
        One of :data:`SET_NAMES`.

    Raises
    ------
    ValueError
        Unknown set name.
    """
    return list(_entries(name))


def describe_sets() -> list[dict]:
    """Name, molecule count, smallest and largest atom count and description of every built-in set.

    No geometry is built: atom counts come from SMILES with hydrogens added (NCI, oligomers) or from ASE.
    """
    rows = []
    for name in SET_NAMES:
        entries = _entries(name)
        sizes = [e.natoms for e in entries]
        rows.append({"name": name, "molecules": len(entries), "min_atoms": min(sizes), "max_atoms": max(sizes),
                     "description": _DESCRIPTIONS[name]})
    return rows


def _file_entries(path: str) -> list[Entry]:
    return [Entry(s.id, s.natoms, functools.partial(_identity, s)) for s in read_structures(path)]


def _identity(structure: Structure) -> Structure:
    return structure


def select(entries: list[Entry], *, limit: int | None = None, sample: int | None = None,
           seed: int = 0) -> list[Entry]:
    """First ``limit`` entries, or ``sample`` entries drawn without replacement with ``random.Random(seed)``.

    The sample keeps the set's order. Both None: all entries.
    """
    if limit is not None and sample is not None:
        raise ValueError("give either limit or sample, not both.")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}.")
        return entries[:limit]
    if sample is not None:
        if sample < 1:
            raise ValueError(f"sample must be at least 1, got {sample}.")
        if sample >= len(entries):
            return list(entries)
        chosen = set(random.Random(seed).sample(range(len(entries)), sample))
        return [e for i, e in enumerate(entries) if i in chosen]
    return list(entries)


def resolve_molecules(spec: str, *, limit: int | None = None, sample: int | None = None,
                      seed: int = 0) -> list[Structure]:
    """Structures for a comma-separated list of set names and paths, with the selection applied per item.

    Parameters
    ----------
    spec : str
        ``"nci-21-25"``, ``"g2,my.xyz"``, ``"folder/"`` ...
    limit, sample, seed
        See :func:`select`; applied to each set or file separately.

    Returns
    -------
    list of Structure
        In order; a molecule id that occurs twice with different geometries is an error, an exact repeat is
        kept once.

    Raises
    ------
    ValueError
        Unknown set, unreadable file, invalid structure, clashing ids.
    """
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise ValueError("no molecules given (--molecules is empty).")
    out: dict[str, Structure] = {}
    for item in items:
        if item in SET_NAMES:
            entries = set_entries(item)
        elif Path(item).exists():
            entries = _file_entries(item)
        elif any(item.lower().endswith(s) for s in (".xyz", ".extxyz", ".sdf", ".mol", ".db")) or "/" in item:
            raise ValueError(f"structure file {item!r} does not exist.")
        else:
            raise ValueError(f"unknown molecule set {item!r}; known sets: {', '.join(SET_NAMES)}, "
                             "or a file or folder path.")
        for entry in select(entries, limit=limit, sample=sample, seed=seed):
            structure = entry.build()
            previous = out.get(structure.id)
            if previous is not None and previous.geometry_hash() != structure.geometry_hash():
                raise ValueError(f"two different molecules share the id {structure.id!r}; rename one of them.")
            out[structure.id] = structure
    return list(out.values())
