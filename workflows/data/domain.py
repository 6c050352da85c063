"""The wider-domain work list: charged, open-shell and bromine/iodine variants of training-pool molecules.

Every variant is made by :mod:`scfbench.variants` (RDKit) from a molecule the main work list already draws from (the NCI training pool and
its fragments, :mod:`workflows.data.worklist`), never from an SCFbench evaluation molecule, and keeps its parent's
``molecule_id``, so the train/val split by parent holds for it too.

Kinds (the work-list ``source``)
--------------------------------
``cation``
    One basic aliphatic amine protonated (R3N → R3NH⁺), or a tertiary one methylated (quaternary ammonium).
``anion``
    One carboxylic acid, phenol or sulfonic acid deprotonated.
``zwitterion``
    Both at once (net charge 0, two charged centres).
``radical``
    One hydrogen removed from a carbon (a doublet, 2S = 1).
``bromide`` / ``iodide``
    Every Cl replaced by Br (I), or, without Cl, one aromatic C–H replaced by C–Br (C–I).

Which site is changed is fixed by a hash of the parent id, so the list is deterministic. A variant whose
stereo-free SMILES is an SCFbench evaluation molecule (``nci-halogen`` included) is left out. ``python -m
workflows.data.domain`` writes ``data/worklist-domain.jsonl``: the charged structures first (small and 21-40-atom
ones interleaved, zwitterions among the first), then radicals, bromides and iodides in turn.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

from scfbench.variants import charged_variants, halogen_variant, radical_variant
from workflows.data.worklist import (MAX_ATOMS, StructureItem, read_work_list, split_of, summary,
                                     write_work_list)

DEFAULT_OUT = Path("data/worklist-domain.jsonl")
#: Largest variant, atoms with hydrogens (the charged ones of 21-40 atoms are where the global error shows).
MAX_VARIANT_ATOMS = 40

def _size_and_elements(smiles: str) -> tuple[int, list[str]]:
    from rdkit import Chem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    return mol.GetNumAtoms(), sorted({a.GetSymbol() for a in mol.GetAtoms()})


def _evaluation_canonicals() -> set[str]:
    """Stereo-free canonical SMILES of every SCFbench evaluation molecule, heavy-halogen ones included."""
    from scfbench import nci

    return ({m.canonical for m in nci.eligible_molecules() if m.is_evaluation}
            | {m.canonical for m in nci.halogen_molecules() if m.is_evaluation})


def _canonical(smiles: str) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)


def _item(kind: str, smiles: str, parent: dict, charge: int = 0, spin: int = 0,
          excluded: frozenset = frozenset()) -> StructureItem | None:
    natoms, elements = _size_and_elements(smiles)
    if natoms > MAX_VARIANT_ATOMS or _canonical(smiles) in excluded:
        return None
    sid = f"{kind}-" + hashlib.sha256(f"{smiles}|{charge}|{spin}".encode()).hexdigest()[:12]
    return StructureItem(sid, kind, parent["molecule_id"], smiles, natoms, elements, split=parent["split"],
                         charge=charge, spin=spin)


def parents(worklist: Path, whole: Path | None = None) -> list[dict]:
    """Distinct training-pool molecules and fragments of the work lists (no conformers, no QM7), in list order."""
    items = read_work_list(worklist) + (read_work_list(whole) if whole is not None and whole.exists() else [])
    seen, out = set(), []
    for it in items:
        if it["source"] in ("nci", "fragment", "whole") and it["smiles"] not in seen:
            seen.add(it["smiles"])
            out.append({**it, "split": it.get("split") or split_of(it["molecule_id"])})
    return out


def domain_work_list(worklist: Path, whole: Path | None = None, n_charged: int = 400, n_radical: int = 300,
                     n_halogen: int = 400) -> list[StructureItem]:
    """The ordered wider-domain work list (see the module doc).

    Parameters
    ----------
    worklist, whole : Path
        The main work list and the whole-molecule work list the parents come from.
    n_charged, n_radical, n_halogen : int
        Most structures of each group (``n_halogen`` per element).

    Returns
    -------
    list of StructureItem
    """
    small, large, zwitter, radicals, halogens = [], [], [], [], {"Br": [], "I": []}
    seen, excluded = set(), frozenset(_evaluation_canonicals())

    def add(queue, item):
        if item is not None and item.structure_id not in seen:
            seen.add(item.structure_id)
            queue.append(item)

    for p in parents(worklist, whole):
        key = p["molecule_id"] + p["smiles"]
        for kind, smi, charge in charged_variants(p["smiles"], key):
            item = _item(kind, smi, p, charge=charge, excluded=excluded)
            if item is not None:
                add(zwitter if kind == "zwitterion" else large if item.natoms > MAX_ATOMS else small, item)
        if p["natoms"] <= MAX_ATOMS:
            smi = radical_variant(p["smiles"], key)
            if smi:
                add(radicals, _item("radical", smi, p, spin=1, excluded=excluded))
            for symbol in halogens:
                smi = halogen_variant(p["smiles"], symbol, key)
                if smi:
                    add(halogens[symbol], _item("bromide" if symbol == "Br" else "iodide", smi, p, excluded=excluded))
    charged = []
    queues = [zwitter, large, small]
    while len(charged) < n_charged and any(queues):
        for q in queues:  # a zwitterion, a 21-40-atom ion and a small ion in turn
            if q and len(charged) < n_charged:
                charged.append(q.pop(0))
    rest = []
    streams = [radicals[:n_radical], halogens["Br"][:n_halogen], halogens["I"][:n_halogen]]
    while any(streams):
        for s in streams:
            if s:
                rest.append(s.pop(0))
    return charged + rest


#: Work-list sources of each held-out group (:func:`held_out_domain_structures`).
HELD_OUT_GROUPS = {"charged": ("cation", "anion", "zwitterion"), "radical": ("radical",),
                   "bromide": ("bromide",), "iodide": ("iodide",)}


def held_out_domain_structures(group: str, limit: int | None = None, worklist: Path = DEFAULT_OUT) -> list:
    """Validation-split structures of one group of the wider-domain work list, for choosing models by their guesses.

    Their parents are validation molecules, so a model trained on the ``train`` split saw neither them nor their
    parents, and none is an SCFbench molecule. Work-list order (deterministic), the first ``limit``.

    Returns
    -------
    list of scfguess.structures.Structure
        Ids ``"held-out-<structure id>"``, with the item's charge and spin.
    """
    from scfguess.structures import from_atoms
    from workflows.data.worklist import build_atoms

    if group not in HELD_OUT_GROUPS:
        raise ValueError(f"unknown held-out group {group!r}; choose from {', '.join(HELD_OUT_GROUPS)}.")
    items = [i for i in read_work_list(worklist) if i["split"] == "val" and i["source"] in HELD_OUT_GROUPS[group]]
    return [from_atoms(build_atoms(i), f"held-out-{i['structure_id']}", charge=i["charge"], spin=i["spin"],
                       source=f"{i['source']} of {i['molecule_id']}: {i['smiles']} (validation split)")
            for i in items[:limit]]


def main(argv=None) -> int:
    """Command line: write the wider-domain work list and print its summary."""
    parser = argparse.ArgumentParser(prog="python -m workflows.data.domain", description=__doc__.splitlines()[0])
    parser.add_argument("--worklist", type=Path, default=Path("data/worklist.jsonl"))
    parser.add_argument("--whole", type=Path, default=Path("data/worklist-whole.jsonl"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    items = domain_work_list(args.worklist, args.whole)
    write_work_list(items, args.out)
    report = summary(items)
    report["by_charge"] = dict(Counter(it.charge for it in items))
    charged = [it for it in items if it.source in ("cation", "anion", "zwitterion")]
    report["charged"] = len(charged)
    report["charged_21_40_atoms"] = sum(1 for it in charged if it.natoms > MAX_ATOMS)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
