"""Charged, open-shell and bromine/iodine variants of training-pool molecules, for a wider-domain work list.

Every variant is made with RDKit from a molecule the main work list already draws from (the NCI training pool and
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

Which site is changed is fixed by a hash of the parent id, so the list is deterministic. ``python -m
workflows.data.variants`` writes ``data/worklist-domain.jsonl``: the charged structures first (small and 21-40-atom
ones interleaved, zwitterions among the first), then radicals, bromides and iodides in turn.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

from workflows.data.worklist import (MAX_ATOMS, StructureItem, read_work_list, split_of, summary,
                                     write_work_list)

DEFAULT_OUT = Path("data/worklist-domain.jsonl")
#: Largest variant, atoms with hydrogens (the charged ones of 21-40 atoms are where the global error shows).
MAX_VARIANT_ATOMS = 40

#: SMARTS of the sites each kind changes (the matched atom is the first of the pattern).
BASIC_AMINE = ("[NX3;!$(N-[a]);!$(N-C=[O,S,N]);!$(N-S(=O)=O);!$(N-[N,O]);!$(N-C#N);!$(N-P)]"
               "([#6])")
ACIDS = ("[OX2H1]-C(=O)", "[OX2H1]-c", "[OX2H1]-S(=O)=O")
ARYL_CH = "[cH]"
ALKYL_CH = "[CX4;!H0]"


def _pick(matches, key: str):
    """One of ``matches`` (a list of atom-index tuples), chosen by a hash of ``key``."""
    if not matches:
        return None
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return matches[h % len(matches)][0]


def _matches(mol, smarts: str):
    from rdkit import Chem

    return list(mol.GetSubstructMatches(Chem.MolFromSmarts(smarts)))


def _finish(rw) -> str | None:
    """Sanitized canonical SMILES of an edited molecule, or None when RDKit refuses it."""
    from rdkit import Chem

    mol = rw.GetMol()
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # noqa: BLE001 - RDKit raises several sanitization errors
        return None
    return Chem.MolToSmiles(mol)


def _protonate(rw, i: int, methylate: bool = False) -> None:
    from rdkit import Chem

    atom = rw.GetAtomWithIdx(i)
    atom.SetFormalCharge(1)
    if methylate:
        c = rw.AddAtom(Chem.Atom(6))
        rw.AddBond(i, c, Chem.BondType.SINGLE)
    else:
        atom.SetNumExplicitHs(atom.GetTotalNumHs() + 1)
    atom.SetNoImplicit(True)


def _deprotonate(rw, i: int) -> None:
    atom = rw.GetAtomWithIdx(i)
    atom.SetFormalCharge(-1)
    atom.SetNumExplicitHs(0)
    atom.SetNoImplicit(True)


def charged_variants(smiles: str, key: str) -> list[tuple[str, str, int]]:
    """Cation, anion and zwitterion of a molecule where it has the sites.

    Parameters
    ----------
    smiles : str
        Neutral parent.
    key : str
        Fixes which site is changed when there are several.

    Returns
    -------
    list of (kind, SMILES, charge)
    """
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return []
    out = []
    amine = _pick(_matches(mol, BASIC_AMINE), key)
    acid = _pick([m for s in ACIDS for m in _matches(mol, s)], key)
    if amine is not None:
        tertiary = mol.GetAtomWithIdx(amine).GetTotalNumHs() == 0
        rw = Chem.RWMol(mol)
        _protonate(rw, amine, methylate=tertiary and int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2 == 0)
        out.append(("cation", _finish(rw), 1))
    if acid is not None:
        rw = Chem.RWMol(mol)
        _deprotonate(rw, acid)
        out.append(("anion", _finish(rw), -1))
    if amine is not None and acid is not None:
        rw = Chem.RWMol(mol)
        _protonate(rw, amine)
        _deprotonate(rw, acid)
        out.append(("zwitterion", _finish(rw), 0))
    return [(kind, smi, charge) for kind, smi, charge in out if smi]


def radical_variant(smiles: str, key: str) -> str | None:
    """The doublet left when one hydrogen is taken from a carbon (sp3 C–H preferred, else aromatic C–H)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    site = _pick(_matches(mol, ALKYL_CH), key)
    if site is None:
        site = _pick(_matches(mol, ARYL_CH), key)
    if site is None:
        return None
    rw = Chem.RWMol(mol)
    atom = rw.GetAtomWithIdx(site)
    atom.SetNumExplicitHs(atom.GetTotalNumHs() - 1)
    atom.SetNoImplicit(True)
    atom.SetNumRadicalElectrons(1)
    return _finish(rw)


def halogen_variant(smiles: str, symbol: str, key: str) -> str | None:
    """Every Cl replaced by ``symbol`` (Br or I), or without Cl one aromatic C–H replaced by C–``symbol``."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    z = Chem.GetPeriodicTable().GetAtomicNumber(symbol)
    rw = Chem.RWMol(mol)
    chlorines = [a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "Cl"]
    if chlorines:
        for i in chlorines:
            rw.GetAtomWithIdx(i).SetAtomicNum(z)
        return _finish(rw)
    site = _pick(_matches(mol, ARYL_CH), key)
    if site is None:
        return None
    x = rw.AddAtom(Chem.Atom(z))
    rw.AddBond(site, x, Chem.BondType.SINGLE)
    return _finish(rw)


def _size_and_elements(smiles: str) -> tuple[int, list[str]]:
    from rdkit import Chem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    return mol.GetNumAtoms(), sorted({a.GetSymbol() for a in mol.GetAtoms()})


def _item(kind: str, smiles: str, parent: dict, charge: int = 0, spin: int = 0) -> StructureItem | None:
    natoms, elements = _size_and_elements(smiles)
    if natoms > MAX_VARIANT_ATOMS:
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
    seen = set()

    def add(queue, item):
        if item is not None and item.structure_id not in seen:
            seen.add(item.structure_id)
            queue.append(item)

    for p in parents(worklist, whole):
        key = p["molecule_id"] + p["smiles"]
        for kind, smi, charge in charged_variants(p["smiles"], key):
            item = _item(kind, smi, p, charge=charge)
            if item is not None:
                add(zwitter if kind == "zwitterion" else large if item.natoms > MAX_ATOMS else small, item)
        if p["natoms"] <= MAX_ATOMS:
            smi = radical_variant(p["smiles"], key)
            if smi:
                add(radicals, _item("radical", smi, p, spin=1))
            for symbol in halogens:
                smi = halogen_variant(p["smiles"], symbol, key)
                if smi:
                    add(halogens[symbol], _item("bromide" if symbol == "Br" else "iodide", smi, p))
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


def main(argv=None) -> int:
    """Command line: write the wider-domain work list and print its summary."""
    parser = argparse.ArgumentParser(prog="python -m workflows.data.variants", description=__doc__.splitlines()[0])
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
