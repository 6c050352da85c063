"""The NCI molecule set shipped with RDKit and its evaluation / training split.

RDKit's wheel ships ``rdkit/Data/NCI/first_5K.smi`` (5,000 NCI compounds). A molecule is
*eligible* when it parses and sanitizes, is one fragment, has zero net formal charge and contains
only H, C, N, O, F, P, S and Cl (hydrogens made explicit). Eligible molecules are numbered in file
order; those with an even eligible index form the SCFbench evaluation set, the others the training
pool of scfguess. Both projects import the split from here so that they can never overlap.
The file lists some compounds more than once, so the training pool also drops every molecule whose
stereo-free canonical SMILES occurs in the evaluation set, and keeps only the first of repeats.

Geometries come from :func:`embed` (RDKit ETKDG v3 + MMFF94, fixed seed, deterministic) and are
cached as small ``.npz`` files under ``$SCFBENCH_CACHE`` (default ``~/.cache/scfbench``).

Example
-------
>>> from scfbench.nci import training_pool, embed
>>> atoms = embed(training_pool(max_atoms=12)[0].smiles)
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Elements allowed in the NCI sets.
ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F", "P", "S", "Cl")
#: Heavy halogens of the separate ``nci-halogen`` list (molecules with at least one of them).
HEAVY_HALOGENS: tuple[str, ...] = ("Br", "I")

#: Default embedding seed (ETKDG ``randomSeed``).
DEFAULT_SEED = 0xC0FFEE


@dataclass(frozen=True)
class NciMolecule:
    """One eligible NCI molecule.

    Attributes
    ----------
    index : int
        Position in the list of eligible molecules (file order); even → evaluation set.
    nci_id : str
        Identifier in the second column of ``first_5K.smi``.
    smiles : str
        SMILES as written in the file (hydrogens implicit).
    natoms : int
        Number of atoms including hydrogens.
    elements : tuple of str
        Sorted distinct element symbols.
    canonical : str
        Canonical SMILES without stereochemistry (identity used for the split).
    """

    index: int
    nci_id: str
    smiles: str
    natoms: int
    elements: tuple[str, ...]
    canonical: str = ""

    @property
    def is_evaluation(self) -> bool:
        """True when the molecule belongs to the SCFbench evaluation set."""
        return self.index % 2 == 0


def nci_path() -> Path:
    """Path of RDKit's ``first_5K.smi`` file."""
    import rdkit

    path = Path(rdkit.__file__).parent / "Data" / "NCI" / "first_5K.smi"
    if not path.is_file():
        raise FileNotFoundError(f"RDKit's NCI file is missing: {path}")
    return path


def _eligible_mol(smiles: str, heavy_halogen: bool = False):
    """Return the sanitized RDKit molecule with explicit H, or None when not eligible.

    ``heavy_halogen``: eligible for the separate list of molecules with Br or I (and otherwise :data:`ELEMENTS`).
    """
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    if len(Chem.GetMolFrags(mol)) != 1 or Chem.GetFormalCharge(mol) != 0:
        return None
    if heavy_halogen and any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
        return None
    symbols = {atom.GetSymbol() for atom in mol.GetAtoms()}
    allowed = set(ELEMENTS) | (set(HEAVY_HALOGENS) if heavy_halogen else set())
    if not symbols <= allowed or (heavy_halogen and not symbols & set(HEAVY_HALOGENS)):
        return None
    return Chem.AddHs(mol)


@functools.lru_cache(maxsize=1)
def eligible_molecules() -> tuple[NciMolecule, ...]:
    """All eligible NCI molecules in file order.

    Returns
    -------
    tuple of NciMolecule
        4,287 molecules with RDKit 2023-2026 (1,039 of them with at most 20 atoms).
    """
    return _read_nci(heavy_halogen=False)


@functools.lru_cache(maxsize=1)
def halogen_molecules() -> tuple[NciMolecule, ...]:
    """NCI molecules with Br or I (else H C N O F P S Cl; neutral, one fragment), numbered on their own.

    A list separate from :func:`eligible_molecules`, so the main split is untouched; even index → evaluation
    (the ``nci-halogen`` set), as there.

    Returns
    -------
    tuple of NciMolecule
        285 molecules (78 of the evaluation half have 20-40 atoms: 66 with Br, 12 with I).
    """
    return _read_nci(heavy_halogen=True)


def _read_nci(heavy_halogen: bool) -> tuple[NciMolecule, ...]:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        out = []
        with open(nci_path()) as fh:
            for line in fh:
                parts = line.split()
                if not parts:
                    continue
                mol = _eligible_mol(parts[0], heavy_halogen)
                if mol is None:
                    continue
                symbols = tuple(sorted({a.GetSymbol() for a in mol.GetAtoms()}))
                canonical = Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False)
                out.append(NciMolecule(index=len(out), nci_id=parts[1] if len(parts) > 1 else "",
                                       smiles=parts[0], natoms=mol.GetNumAtoms(), elements=symbols,
                                       canonical=canonical))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _pool() -> tuple[NciMolecule, ...]:
    """Odd-index molecules not in the evaluation set under any index, first occurrence only."""
    seen = {m.canonical for m in eligible_molecules() if m.is_evaluation}
    pool = []
    for m in eligible_molecules():
        if not m.is_evaluation and m.canonical not in seen:
            seen.add(m.canonical)
            pool.append(m)
    return tuple(pool)


def _select(molecules, min_atoms: int | None, max_atoms: int | None) -> list[NciMolecule]:
    lo = 0 if min_atoms is None else min_atoms
    hi = np.inf if max_atoms is None else max_atoms
    return [m for m in molecules if lo <= m.natoms <= hi]


def evaluation_molecules(min_atoms: int | None = None, max_atoms: int | None = None) -> list[NciMolecule]:
    """Eligible molecules with an even index (SCFbench evaluation), optionally filtered by size.

    Parameters
    ----------
    min_atoms, max_atoms : int, optional
        Inclusive bounds on the number of atoms including hydrogens.
    """
    return _select([m for m in eligible_molecules() if m.is_evaluation], min_atoms, max_atoms)


def training_pool(min_atoms: int | None = None, max_atoms: int | None = None) -> list[NciMolecule]:
    """Eligible molecules with an odd index (training pool), optionally filtered by size.

    Molecules whose stereo-free canonical SMILES also occurs in the evaluation set are left out,
    and so are repeats within the pool (2,076 molecules; 505 with at most 20 atoms).

    Parameters
    ----------
    min_atoms, max_atoms : int, optional
        Inclusive bounds on the number of atoms including hydrogens.
    """
    return _select(_pool(), min_atoms, max_atoms)


def cache_dir() -> Path:
    """Geometry cache folder: ``$SCFBENCH_CACHE`` or ``~/.cache/scfbench``."""
    env = os.environ.get("SCFBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "scfbench"


def _embed_uncached(smiles: str, seed: int, n_confs: int) -> tuple[np.ndarray, np.ndarray]:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}.")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    params.numThreads = 1
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_confs, params=params))
    if len(ids) < n_confs:
        params.useRandomCoords = True
        ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_confs, params=params))
    if len(ids) < n_confs:
        raise ValueError(f"RDKit could not embed {n_confs} conformer(s) of {smiles!r}.")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    else:
        AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    positions = np.stack([mol.GetConformer(i).GetPositions() for i in ids])
    return numbers, positions


def embed(smiles: str, seed: int = DEFAULT_SEED, n_confs: int = 1):
    """Deterministic 3D geometry (ETKDG v3 + MMFF94, UFF where MMFF lacks parameters).

    Parameters
    ----------
    smiles : str
        Molecule; hydrogens are added.
    seed : int
        ETKDG random seed.
    n_confs : int
        Number of conformers.

    Returns
    -------
    ase.Atoms or list of ase.Atoms
        One ``Atoms`` (positions in Å) when ``n_confs == 1``, else a list of ``n_confs``.
        Results are cached on disk (see :func:`cache_dir`).
    """
    import ase
    import rdkit

    if n_confs < 1:
        raise ValueError(f"n_confs must be at least 1, got {n_confs}.")
    key = hashlib.sha256(f"{smiles}|{seed}|{n_confs}|{rdkit.__version__}".encode()).hexdigest()[:32]
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path) as data:
            numbers, positions = data["numbers"], data["positions"]
    except (OSError, KeyError, ValueError):
        numbers, positions = _embed_uncached(smiles, seed, n_confs)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, numbers=numbers, positions=positions)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs time
    confs = [ase.Atoms(numbers=numbers, positions=p) for p in positions]
    return confs[0] if n_confs == 1 else confs
