"""Training structures for the density labels: sources, fragments, enrichment, split and order.

Every structure comes from the NCI *training pool* (:func:`scfbench.nci.training_pool`), never
from the SCFbench evaluation molecules, or optionally from QM7:

- ``nci``: pool molecules of at most 20 atoms, ETKDG + MMFF geometry (seed 0xC0FFEE);
- ``fragment``: hydrogen-capped fragments of the 21-100-atom pool molecules, cut along acyclic
  single bonds between uncharged heavy atoms, at most 20 atoms and at least 3 heavy atoms,
  neutral and closed-shell, deduplicated by stereo-free canonical SMILES (against each other, the
  ``nci`` molecules and the evaluation molecules), embedded afresh with ETKDG + MMFF;
- ``conformer``: another ETKDG seed of an ``nci`` molecule or fragment, MMFF-relaxed, then
  displaced by Gaussian thermal-like noise (σ = 0.03 Å for heavy atoms, 0.06 Å for H);
- ``qm7``: molecules of ``/work/shared/data/qm7/qm7.xyz`` (only with ``--qm7``), minus any whose
  bond graph matches an evaluation molecule;
- ``whole``: whole ``train``-split pool molecules of 21-40 atoms (the parents of fragments), geometry as
  SCFbench builds it, in a fixed pseudo-random order (only with ``--whole``, written to a work list of their own:
  they cost several times a fragment's labelling time, and are the first labels at SCFbench's sizes).

Every structure records its ``molecule_id``, the parent molecule (a fragment's parent is the large
NCI molecule it was cut from; a conformer's parent is that of its molecule). The train/val split is
by parent: ``val`` when a hash of the parent id falls in the val fraction, so a parent's molecule,
fragments and conformers are all on one side.

The work list is ordered for variety first (see :func:`work_list`): one structure per distinct
molecule, with molecules containing the rare elements (P, F, Cl, S) and conformers of them given
half of the places until every element appears in ``min_per_element`` structures, then one
conformer of every molecule, then QM7. ``python -m workflows.data.worklist`` writes it to ``data/worklist.jsonl`` (``--whole``: to
``data/worklist-whole.jsonl``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from scfbench import nci

#: Elements enriched until each appears in ``min_per_element`` structures (rarest first).
RARE_ELEMENTS: tuple[str, ...] = ("P", "F", "Cl", "S")
MAX_ATOMS = 20
MIN_FRAGMENT_HEAVY_ATOMS = 3
#: Thermal-like displacement σ in Å for heavy atoms and for hydrogen.
JITTER_HEAVY = 0.03
JITTER_H = 0.06
DEFAULT_QM7 = Path("/work/shared/data/qm7/qm7.xyz")
DEFAULT_WORKLIST = Path("data/worklist.jsonl")
#: Where ``--whole`` writes its work list unless ``--out`` is given (never over the main one).
WHOLE_WORKLIST = Path("data/worklist-whole.jsonl")


@dataclass
class StructureItem:
    """A recipe for one structure; :func:`build_atoms` turns it into coordinates.

    Attributes
    ----------
    structure_id : str
        Unique key.
    source : str
        ``"nci"``, ``"fragment"``, ``"conformer"`` or ``"qm7"``.
    molecule_id : str
        Parent molecule id (split unit).
    smiles : str
        Canonical SMILES of the structure ("" for QM7).
    natoms : int
        Atoms including hydrogens.
    elements : list of str
        Distinct element symbols.
    seed : int
        ETKDG seed (unused for QM7).
    jitter : bool
        Add thermal-like displacements.
    split : str
        ``"train"`` or ``"val"``.
    numbers, positions : list, optional
        Explicit geometry (QM7), positions in Å.
    charge : int
        Total charge (e).
    spin : int
        2S = N_alpha - N_beta.
    """

    structure_id: str
    source: str
    molecule_id: str
    smiles: str
    natoms: int
    elements: list[str]
    seed: int = nci.DEFAULT_SEED
    jitter: bool = False
    split: str = "train"
    numbers: list[int] | None = None
    positions: list[list[float]] | None = field(default=None, repr=False)
    charge: int = 0
    spin: int = 0


def split_of(molecule_id: str, val_fraction: float = 0.1) -> str:
    """Deterministic molecule-level split: ``"val"`` for a ``val_fraction`` of parent ids."""
    h = int.from_bytes(hashlib.sha256(molecule_id.encode()).digest()[:8], "little")
    return "val" if h / 2**64 < val_fraction else "train"


def held_out_structures(min_atoms: int = 21, max_atoms: int = 40, limit: int | None = None,
                        val_fraction: float = 0.1) -> list:
    """Larger training-pool molecules of the validation split, for choosing models by their guesses.

    The parents of the ``val`` split with ``min_atoms``..``max_atoms`` atoms: never labelled, and their
    fragments are validation structures, so a model trained on the ``train`` split saw neither them nor a
    fragment cut only from them. Unlike the ≤ 20-atom validation structures they are as large as SCFbench's
    molecules, and unlike the ``nci-*`` sets they are not benchmark molecules. Geometry as SCFbench builds it (:func:`scfbench.nci.embed`).

    Parameters
    ----------
    min_atoms, max_atoms : int
        Inclusive bounds on the atom count including hydrogens.
    limit : int, optional
        The first ``limit`` molecules in a fixed pseudo-random order (sha256 of the id), so a short list is a
        sample across sizes.

    Returns
    -------
    list of scfguess.structures.Structure
        Ids ``"held-out-nci-<NCI id>"``, neutral singlets.
    """
    from scfguess.structures import from_atoms

    molecules = [m for m in nci.training_pool(min_atoms=min_atoms, max_atoms=max_atoms)
                 if split_of(f"nci-{m.nci_id}", val_fraction) == "val"]
    molecules.sort(key=lambda m: hashlib.sha256(str(m.nci_id).encode()).hexdigest())
    return [from_atoms(nci.embed(m.smiles), f"held-out-nci-{m.nci_id}", charge=0, spin=0,
                       source=f"NCI first_5K id {m.nci_id}: {m.smiles} (training pool, validation split)")
            for m in molecules[:limit]]


def _canonical(mol) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False)


def fragments(smiles: str, max_atoms: int = MAX_ATOMS,
              min_heavy: int = MIN_FRAGMENT_HEAVY_ATOMS) -> list[tuple[str, int]]:
    """Hydrogen-capped fragments of a molecule cut along acyclic single bonds.

    Heavy atoms joined by anything other than an acyclic single bond between two uncharged heavy
    atoms stay together (rings, multiple bonds, charged groups such as nitro). Every connected
    union of such units whose capped size is within the limits is a fragment; each cut bond is
    replaced by a hydrogen on the kept atom.

    Parameters
    ----------
    smiles : str
        Parent molecule.
    max_atoms : int
        Largest fragment, hydrogens included.
    min_heavy : int
        Smallest number of heavy atoms.

    Returns
    -------
    list of (str, int)
        Distinct fragments as (stereo-free canonical SMILES, atom count), largest first,
        each a neutral closed-shell molecule that sanitizes.
    """
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}.")
    n = mol.GetNumAtoms()
    cuttable = [
        b for b in mol.GetBonds()
        if b.GetBondType() == Chem.BondType.SINGLE and not b.IsInRing()
        and b.GetBeginAtom().GetFormalCharge() == 0 and b.GetEndAtom().GetFormalCharge() == 0
    ]
    cut_ids = {b.GetIdx() for b in cuttable}
    # units: components under the non-cuttable bonds
    unit = list(range(n))

    def find(i):
        while unit[i] != i:
            unit[i] = unit[unit[i]]
            i = unit[i]
        return i

    for b in mol.GetBonds():
        if b.GetIdx() not in cut_ids:
            a, c = find(b.GetBeginAtomIdx()), find(b.GetEndAtomIdx())
            unit[max(a, c)] = min(a, c)
    roots = sorted({find(i) for i in range(n)})
    index = {r: k for k, r in enumerate(roots)}
    members = [[] for _ in roots]
    for i in range(n):
        members[index[find(i)]].append(i)
    size = [sum(1 + mol.GetAtomWithIdx(i).GetTotalNumHs() for i in m) for m in members]
    neighbours = [set() for _ in roots]
    for b in cuttable:
        a, c = index[find(b.GetBeginAtomIdx())], index[find(b.GetEndAtomIdx())]
        neighbours[a].add(c)
        neighbours[c].add(a)

    def capped_size(subset):
        caps = sum(1 for u in subset for v in neighbours[u] if v not in subset)
        return sum(size[u] for u in subset) + caps

    # connected subsets of the unit tree (each enumerated once: extensions only to larger ids
    # than the start unit); a subset stays under max_atoms only while its heavy part does
    found: dict[str, int] = {}
    seen_subsets = set()
    for start in range(len(roots)):
        stack = [frozenset([start])]
        while stack:
            subset = stack.pop()
            if subset in seen_subsets:
                continue
            seen_subsets.add(subset)
            if capped_size(subset) <= max_atoms:
                frag = _cap(mol, [i for u in subset for i in members[u]])
                if frag is not None and frag[1] >= min_heavy:
                    found.setdefault(frag[0], frag[2])
            for u in subset:
                for v in neighbours[u]:
                    if v > start and v not in subset:
                        grown = subset | {v}
                        if sum(size[w] for w in grown) <= max_atoms and grown not in seen_subsets:
                            stack.append(grown)
    return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))


def _cap(mol, keep: list[int]):
    """Sub-molecule of ``keep`` with each cut bond capped by H: (canonical, heavy atoms, atoms) or None."""
    from rdkit import Chem

    keep_set = set(keep)
    rw = Chem.RWMol(mol)
    for b in mol.GetBonds():
        a, c = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        if (a in keep_set) != (c in keep_set):
            inner = rw.GetAtomWithIdx(a if a in keep_set else c)
            inner.SetNumExplicitHs(inner.GetNumExplicitHs() + 1)
    for i in sorted(set(range(mol.GetNumAtoms())) - keep_set, reverse=True):
        rw.RemoveAtom(i)
    frag = rw.GetMol()
    try:
        Chem.SanitizeMol(frag)
    except Exception:  # noqa: BLE001 - RDKit raises several sanitization errors
        return None
    if not is_valid_closed_shell(frag):
        return None
    frag_h = Chem.AddHs(frag)
    return _canonical(frag_h), frag.GetNumAtoms(), frag_h.GetNumAtoms()


def is_valid_closed_shell(mol) -> bool:
    """True for a sanitized, neutral, single-fragment molecule without radicals and an even electron count."""
    from rdkit import Chem

    if Chem.GetFormalCharge(mol) != 0 or len(Chem.GetMolFrags(mol)) != 1:
        return False
    if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return False
    electrons = sum(a.GetAtomicNum() + a.GetTotalNumHs() for a in mol.GetAtoms())
    return electrons % 2 == 0


def _elements(smiles: str) -> tuple[list[str], int]:
    from rdkit import Chem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    return sorted({a.GetSymbol() for a in mol.GetAtoms()}), mol.GetNumAtoms()


def _base_items(val_fraction: float) -> tuple[list[StructureItem], list[StructureItem]]:
    """``nci`` items and deduplicated ``fragment`` items."""
    evaluation = {m.canonical for m in nci.evaluation_molecules()}
    small = []
    taken = set(evaluation)
    for m in nci.training_pool(max_atoms=MAX_ATOMS):
        mid = f"nci-{m.nci_id}"
        small.append(StructureItem(mid, "nci", mid, m.canonical, m.natoms, list(m.elements),
                                   split=split_of(mid, val_fraction)))
        taken.add(m.canonical)
    frags = []
    for parent in nci.training_pool(min_atoms=MAX_ATOMS + 1, max_atoms=100):
        mid = f"nci-{parent.nci_id}"
        for canonical, natoms in fragments(parent.smiles):
            if canonical in taken:
                continue
            taken.add(canonical)
            sid = "frag-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]
            elements, _ = _elements(canonical)
            frags.append(StructureItem(sid, "fragment", mid, canonical, natoms, elements,
                                       split=split_of(mid, val_fraction)))
    return small, frags


def _conformer(item: StructureItem, seed: int) -> StructureItem:
    return StructureItem(f"{item.structure_id}-c{seed}", "conformer", item.molecule_id, item.smiles,
                         item.natoms, item.elements, seed=seed, jitter=True, split=item.split)


def _interleave(*queues: list[StructureItem]) -> list[StructureItem]:
    out, queues = [], [list(q) for q in queues]
    k = 0
    while any(k < len(q) for q in queues):
        out.extend(q[k] for q in queues if k < len(q))
        k += 1
    return out


def _rarity(item: StructureItem) -> int:
    """Position of the rarest rare element of the item (len(RARE_ELEMENTS) when none)."""
    return min((RARE_ELEMENTS.index(e) for e in item.elements if e in RARE_ELEMENTS),
               default=len(RARE_ELEMENTS))


def _by_parent_variety(items: list[StructureItem]) -> list[StructureItem]:
    """Round-robin over parents so that consecutive fragments come from different molecules."""
    groups: dict[str, list[StructureItem]] = {}
    for it in items:
        groups.setdefault(it.molecule_id, []).append(it)
    return _interleave(*groups.values())


def qm7_items(path: Path = DEFAULT_QM7, val_fraction: float = 0.1) -> list[StructureItem]:
    """QM7 molecules from an extended XYZ file, minus those matching an evaluation molecule.

    Returns an empty list when the file does not exist (QM7 is optional).
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        return []
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    evaluation = {m.canonical for m in nci.evaluation_molecules()}
    items = []
    for k, atoms in enumerate(read(path, index=":")):
        if atoms.info.get("charge", 0) != 0 or atoms.info.get("spin", 0) != 0:
            continue
        tag = str(atoms.info.get("source", f"QM7/{k:04d}")).replace("/", "-").lower()
        try:
            mol = Chem.MolFromXYZBlock(f"{len(atoms)}\n\n" + "\n".join(
                f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in
                zip(atoms.get_chemical_symbols(), atoms.positions)))
            rdDetermineBonds.DetermineBonds(mol, charge=0)
            canonical = _canonical(mol)
        except Exception:  # noqa: BLE001 - unperceivable bonding: keep the structure, unknown SMILES
            canonical = ""
        if canonical in evaluation:
            continue
        items.append(StructureItem(tag, "qm7", tag, canonical, len(atoms),
                                   sorted(set(atoms.get_chemical_symbols())),
                                   split=split_of(tag, val_fraction),
                                   numbers=atoms.numbers.tolist(),
                                   positions=np.round(atoms.positions, 6).tolist()))
    return items


def whole_items(min_atoms: int = MAX_ATOMS + 1, max_atoms: int = 40,
                val_fraction: float = 0.1) -> list[StructureItem]:
    """Whole training-pool molecules of ``min_atoms``..``max_atoms`` atoms, in a fixed pseudo-random order.

    The order is that of the sha256 of the NCI id, so any prefix is a sample across sizes. Only molecules of
    the ``train`` split (:func:`split_of`) are listed: the ``val`` ones of 21-40 atoms are
    :func:`held_out_structures`, on whose guesses models are chosen, and stay unlabelled.

    Returns
    -------
    list of StructureItem
        Ids ``"whole-nci-<NCI id>"``, source ``"whole"``; ``smiles`` is the NCI SMILES with its stereochemistry,
        so the geometry is the one :func:`scfbench.nci.embed` gives SCFbench and :func:`held_out_structures`.
    """
    molecules = sorted(nci.training_pool(min_atoms=min_atoms, max_atoms=max_atoms),
                       key=lambda m: hashlib.sha256(str(m.nci_id).encode()).hexdigest())
    return [StructureItem(f"whole-nci-{m.nci_id}", "whole", f"nci-{m.nci_id}", m.smiles, m.natoms,
                          list(m.elements), split="train")
            for m in molecules if split_of(f"nci-{m.nci_id}", val_fraction) == "train"]


def work_list(min_per_element: int = 300, max_conformers: int = 8, val_fraction: float = 0.1,
              qm7: Path | None = None) -> list[StructureItem]:
    """The ordered, deterministic list of structures to label.

    Distinct molecules come first, drawn in turn from five queues: one per rare element (molecules
    whose rarest element it is, then conformers of molecules containing it while that element is
    in fewer than ``min_per_element`` structures) and one of the remaining molecules, which gets as
    many turns as the four rare queues together. Within a queue ``nci`` molecules alternate with
    fragments and consecutive fragments come from different parents. Then one conformer of each
    molecule not yet conformed, then QM7.

    Parameters
    ----------
    min_per_element : int
        Conformers of rare-element molecules are added until each element of
        :data:`RARE_ELEMENTS` appears in this many structures (or ``max_conformers`` run out).
    max_conformers : int
        Most conformer seeds per molecule for the enrichment.
    val_fraction : float
        Fraction of parent molecules held out for validation.
    qm7 : path, optional
        QM7 extended XYZ file; appended last when given and present.

    Returns
    -------
    list of StructureItem
    """
    small, frags = _base_items(val_fraction)

    def varied(items):
        return _interleave([it for it in items if it.source == "nci"],
                           _by_parent_variety([it for it in items if it.source == "fragment"]))

    queues = [varied([it for it in small + frags if _rarity(it) == r]) for r in range(len(RARE_ELEMENTS) + 1)]
    counts: Counter = Counter()
    conformed: set[str] = set()
    order: list[StructureItem] = []

    def take(item):
        order.append(item)
        counts.update(item.elements)

    def enrichment(element):
        """Conformers of the molecules with ``element`` while it is under-represented."""
        members = [it for it in small + frags if element in it.elements]
        for seed in range(1, max_conformers + 1):
            for it in members:
                if counts[element] >= min_per_element:
                    return
                conformed.add(it.structure_id)
                yield _conformer(it, seed)

    streams = [iter(q) for q in queues]
    rare_streams = [(streams[r], enrichment(e)) for r, e in enumerate(RARE_ELEMENTS)]
    common, active = streams[-1], [True] * (len(RARE_ELEMENTS) + 1)
    while any(active):
        for r, (base, extra) in enumerate(rare_streams):
            if active[r]:
                item = next(base, None) or next(extra, None)
                active[r] = item is not None
                if item is not None:
                    take(item)
            if active[-1]:
                item = next(common, None)
                active[-1] = item is not None
                if item is not None:
                    take(item)
    order += [_conformer(it, 1) for it in varied(small + frags) if it.structure_id not in conformed]
    if qm7 is not None:
        order += qm7_items(qm7, val_fraction)
    return order


def build_atoms(item: StructureItem | dict):
    """Coordinates of a work-list item (deterministic).

    Parameters
    ----------
    item : StructureItem or dict
        Work-list entry.

    Returns
    -------
    ase.Atoms
        Positions in Å.
    """
    import ase

    if isinstance(item, dict):
        item = StructureItem(**item)
    if item.positions is not None:
        return ase.Atoms(numbers=item.numbers, positions=item.positions)
    atoms = nci.embed(item.smiles, seed=item.seed)
    if item.jitter:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(item.structure_id.encode()).digest()[:8],
                                                   "little"))
        sigma = np.where(atoms.numbers == 1, JITTER_H, JITTER_HEAVY)[:, None]
        atoms.positions = atoms.positions + rng.normal(size=atoms.positions.shape) * sigma
    return atoms


def write_work_list(items: list[StructureItem], path: Path) -> None:
    """Write one JSON object per line (atomic replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        for it in items:
            d = {k: v for k, v in asdict(it).items() if v is not None}
            fh.write(json.dumps(d, separators=(",", ":")) + "\n")
    tmp.replace(path)


def read_work_list(path: Path) -> list[dict]:
    """Read a work list written by :func:`write_work_list`."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def summary(items) -> dict:
    """Counts by source, element (structures containing it), split and distinct molecules."""
    items = [StructureItem(**it) if isinstance(it, dict) else it for it in items]
    return {
        "structures": len(items),
        "by_source": dict(Counter(it.source for it in items)),
        "by_element": dict(sorted(Counter(e for it in items for e in it.elements).items())),
        "by_split": dict(Counter(it.split for it in items)),
        "distinct_molecules": len({it.smiles or it.structure_id for it in items}),
        "parents": len({it.molecule_id for it in items}),
    }


def main(argv=None) -> int:
    """Command line: write the work list and print its summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"work list to write (default {DEFAULT_WORKLIST}, with --whole {WHOLE_WORKLIST})")
    parser.add_argument("--min-per-element", type=int, default=300)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--qm7", type=Path, nargs="?", const=DEFAULT_QM7, default=None,
                        help="append QM7 structures (default file when given without a path)")
    parser.add_argument("--whole", metavar="MIN-MAX", default=None,
                        help="instead: whole training-split pool molecules of MIN-MAX atoms (e.g. 21-40), "
                             "for a work list of their own")
    args = parser.parse_args(argv)
    if args.whole:
        try:
            lo, hi = (int(x) for x in args.whole.split("-"))
        except ValueError:
            parser.error(f"--whole wants MIN-MAX atoms such as 21-40, not {args.whole!r}")
        items = whole_items(lo, hi, val_fraction=args.val_fraction)
    else:
        items = work_list(args.min_per_element, val_fraction=args.val_fraction, qm7=args.qm7)
    write_work_list(items, args.out or (WHOLE_WORKLIST if args.whole else DEFAULT_WORKLIST))
    print(json.dumps(summary(items), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
