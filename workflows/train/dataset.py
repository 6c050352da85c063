"""The labelled structures a run trains and validates on: shard files, the molecule-level split, batches, manifests.

A structure is a small dict: ``numbers`` (n,) int, ``positions`` (n, 3) Å, ``charge`` (total, e), ``spin`` (2S),
``coeffs`` (naux,) float32 (the Coulomb-fitted coefficients in PySCF aux order, the training target),
``spin_coeffs`` (naux,) float32 (the fitted spin density; zeros for closed shells), ``split`` (``train``/``val``, assigned per
parent molecule by the labelling workflow), ``molecule_id``, ``structure_id`` and ``source``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scfguess.data import keys as K


class TrainingData(NamedTuple):
    """The structures of one run.

    Attributes
    ----------
    shard_files : list of Path
        The resolved shard files.
    structures : list of dict
        Every structure of the shards (first copy of each id).
    train_set, val_set : list of dict
        The training structures (subsampled per the config) and the validation structures.
    """

    shard_files: list
    structures: list
    train_set: list
    val_set: list


def resolve_shards(patterns) -> list[Path]:
    """Shard files matching the patterns, sorted, duplicates removed."""
    import glob

    paths = sorted({Path(p) for pattern in patterns for p in glob.glob(str(pattern))})
    if not paths:
        raise FileNotFoundError(f"no shard matches {list(patterns)}.")
    return paths


def load_structures(paths) -> list[dict]:
    """All structures of the shards (via :class:`scfguess.data.DensityDataset`) as small dicts (module docstring),
    the first copy of each structure id."""
    from scfguess.data.shards import DensityDataset

    ds = DensityDataset([str(p) for p in paths], auxbasis="def2-universal-jfit")
    out, seen = [], set()
    for i in range(len(ds)):
        item = ds[i]
        if item[K.STRUCTURE_ID_KEY] in seen:  # a structure stored twice (e.g. a snapshot and its sealed shard)
            continue
        seen.add(item[K.STRUCTURE_ID_KEY])
        out.append({
            "numbers": item[K.NUMBERS_KEY], "positions": item[K.POSITIONS_KEY],
            "charge": int(item[K.CHARGE_KEY]), "spin": int(item[K.SPIN_KEY]),
            "coeffs": np.asarray(item[K.COEFFS_KEY], dtype=np.float32),
            "spin_coeffs": np.asarray(item[K.SPIN_COEFFS_KEY], dtype=np.float32), "split": item[K.SPLIT_KEY],
            "molecule_id": item[K.MOLECULE_ID_KEY], "structure_id": item[K.STRUCTURE_ID_KEY],
            "source": item[K.SOURCE_KEY],
        })
    ds.close()
    return out


def split_structures(cfg, structures):
    """Training and validation structures from the stored molecule-level split; optional seeded subsample of the
    training structures outside ``cfg.keep_sources`` (at most ``cfg.max_structures``).

    Parameters
    ----------
    cfg : workflows.train.config.TrainConfig
    structures : list of dict

    Returns
    -------
    train, val : list of dict
    """
    train = [s for s in structures if s["split"] == "train"]
    val = [s for s in structures if s["split"] == "val"]
    overlap = {s["molecule_id"] for s in train} & {s["molecule_id"] for s in val}
    if overlap:
        raise ValueError(f"molecules in both splits: {sorted(overlap)[:5]}; the split must be molecule-level.")
    kept = [s for s in train if s["source"] in cfg.keep_sources]
    others = [s for s in train if s["source"] not in cfg.keep_sources]
    if cfg.max_structures is not None and len(others) > cfg.max_structures:
        train = kept + random.Random(cfg.seed).sample(others, cfg.max_structures)
    if not train or not val:
        raise ValueError(f"need training and validation structures, have {len(train)} and {len(val)}.")
    return train, val


def training_data(cfg) -> TrainingData:
    """The shards, structures and split of the run ``cfg`` (a :class:`~workflows.train.config.TrainConfig`)."""
    shard_files = resolve_shards(cfg.shards)
    structures = load_structures(shard_files)
    return TrainingData(shard_files, structures, *split_structures(cfg, structures))


class Batch(NamedTuple):
    """Structures concatenated into one graph (:func:`batch_tensors`).

    Attributes
    ----------
    numbers : LongTensor (natoms,)
    positions : FloatTensor (natoms, 3)
        Å.
    batch : LongTensor (natoms,)
        Index of each atom's structure.
    target : FloatTensor (naux_total,)
        The structures' coefficients, concatenated.
    bounds : ndarray (nstructures + 1,)
        Structure k's coefficients are ``target[bounds[k]:bounds[k + 1]]``.
    charge, spin : FloatTensor (nstructures,)
        Total charge (e) and 2S of each structure.
    spin_target : FloatTensor (naux_total,)
        The structures' spin-density coefficients, concatenated (zeros for closed shells).
    """

    numbers: object
    positions: object
    batch: object
    target: object
    bounds: np.ndarray
    charge: object
    spin: object
    spin_target: object

    def predict(self, model):
        """The model's total and spin-density coefficients for the whole batch, (naux_total,) each; the spin part
        is None for a model without spin-density heads."""
        if getattr(model, "predicts_spin", False):
            return model(self.numbers, self.positions, self.batch, charge=self.charge, spin=self.spin,
                         with_spin=True)
        return model(self.numbers, self.positions, self.batch, charge=self.charge, spin=self.spin), None


def batch_tensors(structures) -> Batch:
    """Concatenate structures into one graph (a :class:`Batch`)."""
    import torch

    numbers = torch.as_tensor(np.concatenate([s["numbers"] for s in structures]), dtype=torch.long)
    positions = torch.as_tensor(np.concatenate([s["positions"] for s in structures]), dtype=torch.float32)
    batch = torch.as_tensor(np.repeat(np.arange(len(structures)), [len(s["numbers"]) for s in structures]))
    target = torch.as_tensor(np.concatenate([s["coeffs"] for s in structures]), dtype=torch.float32)
    bounds = np.concatenate([[0], np.cumsum([len(s["coeffs"]) for s in structures])])
    charge = torch.tensor([float(s.get("charge", 0)) for s in structures])
    spin = torch.tensor([float(s.get("spin", 0)) for s in structures])
    spin_target = torch.as_tensor(np.concatenate([s.get("spin_coeffs", np.zeros_like(s["coeffs"]))
                                                  for s in structures]), dtype=torch.float32)
    return Batch(numbers, positions, batch, target, bounds, charge, spin, spin_target)


def element_counts(structures) -> dict:
    """Number of atoms of each element over the structures, symbol -> count."""
    from pyscf.data.elements import ELEMENTS

    numbers, counts = np.unique(np.concatenate([s["numbers"] for s in structures]), return_counts=True)
    return {ELEMENTS[int(z)]: int(c) for z, c in zip(numbers, counts)}


def structure_manifest(train_set, val_set, max_listed: int = 1000) -> dict:
    """sha256 of the sorted train/val structure ids, and the ids themselves for small data sets."""
    import hashlib

    out = {}
    for name, structures in (("train", train_set), ("val", val_set)):
        ids = sorted(s["structure_id"] for s in structures)
        out[f"{name}_sha256"] = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        if len(ids) <= max_listed:
            out[name] = ids
    return out
