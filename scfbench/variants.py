"""Chemical variants of a molecule made with RDKit: its ions, a radical, and bromine/iodine analogues.

The training work lists (:mod:`workflows.data.domain`) and the SCFbench sets ``ions`` and ``radicals`` are made with
these functions from disjoint parents (the NCI training pool and evaluation molecules), so they can never overlap.
Where a molecule has several sites, the one changed is chosen by a hash of ``key``: deterministic, and spread over
the sites across molecules.
"""

from __future__ import annotations

import hashlib

__all__ = ["charged_variants", "radical_variant", "halogen_variant"]

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
