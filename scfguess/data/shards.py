"""Labelled density shards: the writer and a lazy, picklable torch ``Dataset`` reader.

Shards are HDF5 files written by :func:`write_shard` (the labelling workflow calls it); every field is named in
:mod:`scfguess.data.keys`. Per-atom arrays and coefficients of all structures of a shard are
concatenated and sliced with ``atom_offsets`` / ``coeff_offsets``.

Example
-------
>>> ds = DensityDataset(sorted(Path("data/shards").glob("*.h5")), split="train")
>>> sample = ds[0]; sample["coeffs"].shape
"""

from __future__ import annotations

from pathlib import Path

import json
import os

import numpy as np

from scfguess.data import keys as K

try:  # torch is a dependency; the reader also works as a plain sequence without it
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover
    _Base = object


def read_strings(dataset) -> list[str]:
    """Decode an HDF5 string dataset into a list of ``str``."""
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[()]]


def check_attributes(attrs, path="") -> None:
    """Refuse a shard without the schema attributes or with another schema version.

    Parameters
    ----------
    attrs : mapping
        ``h5py.File.attrs`` of the shard.
    path : str
        For the error message.

    Raises
    ------
    ValueError
        Missing attribute, or a ``schema_version`` not in :data:`scfguess.data.keys.READABLE_SCHEMA_VERSIONS`.
    """
    missing = [name for name in K.REQUIRED_ATTRIBUTES if name not in attrs]
    if missing:
        raise ValueError(f"{path} is not a density shard: attributes {missing} are missing.")
    if int(attrs["schema_version"]) not in K.READABLE_SCHEMA_VERSIONS:
        raise ValueError(f"{path} has schema_version {attrs['schema_version']}; this reader handles "
                         f"{', '.join(map(str, K.READABLE_SCHEMA_VERSIONS))}.")
    if attrs["units_length"] != "angstrom" or attrs["units_energy"] != "hartree":
        raise ValueError(f"{path} uses units {attrs['units_length']}/{attrs['units_energy']}; "
                         "expected angstrom/hartree.")


class DensityDataset(_Base):
    """Structures of one or more shards, each as a dict of numpy arrays keyed by :mod:`scfguess.data.keys`.

    Parameters
    ----------
    paths : path or sequence of paths
        Shard files. Each is opened once here to check its attributes and read its index, then
        reopened lazily in whichever process reads items (handles are dropped when pickled, so
        the dataset can be sent to DataLoader workers).
    split : str, optional
        Keep only ``"train"`` or ``"val"`` structures.
    auxbasis : str, optional
        Refuse shards fitted in another auxiliary basis.

    Notes
    -----
    An item holds ``numbers`` (n,) int64, ``positions`` (n, 3) float64 Å, ``coeffs`` and ``spin_coeffs``
    (naux,) float32, every scalar field as a 0-d array, and the string fields as ``str``. Items of
    version-1 shards get zero ``spin_coeffs`` and ``ecp = "{}"``.
    """

    def __init__(self, paths, split: str | None = None, auxbasis: str | None = None):
        import h5py

        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths = [str(p) for p in paths]
        if split not in (None, "train", "val"):
            raise ValueError(f"split must be 'train', 'val' or None, got {split!r}.")
        self.attrs: list[dict] = []
        self._index: list[tuple[int, int]] = []  # (file, row)
        for k, path in enumerate(self.paths):
            with h5py.File(path, "r") as f:
                check_attributes(f.attrs, path)
                if auxbasis is not None and f.attrs["auxbasis"] != auxbasis:
                    raise ValueError(f"{path} is fitted in {f.attrs['auxbasis']}, not {auxbasis}.")
                self.attrs.append(dict(f.attrs))
                splits = read_strings(f[K.SPLIT_KEY])
            self._index += [(k, i) for i, s in enumerate(splits) if split is None or s == split]
        self._files: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self._index)

    def _file(self, k: int):
        import h5py

        f = self._files.get(k)
        if f is None:
            f = self._files[k] = h5py.File(self.paths[k], "r")
        return f

    def __getitem__(self, idx: int) -> dict:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} structures.")
        k, i = self._index[idx]
        f = self._file(k)
        a0, a1 = f[K.ATOM_OFFSETS_KEY][i:i + 2]
        c0, c1 = f[K.COEFF_OFFSETS_KEY][i:i + 2]
        coeffs = f[K.COEFFS_KEY][c0:c1]
        item = {
            K.NUMBERS_KEY: f[K.NUMBERS_KEY][a0:a1].astype(np.int64),
            K.POSITIONS_KEY: f[K.POSITIONS_KEY][a0:a1],
            K.COEFFS_KEY: coeffs,
            K.SPIN_COEFFS_KEY: (f[K.SPIN_COEFFS_KEY][c0:c1] if K.SPIN_COEFFS_KEY in f
                                else np.zeros_like(coeffs)),
        }
        for name in K.SCALAR_FIELDS:
            item[name] = np.asarray(f[name][i])
        for name in K.STRING_FIELDS:
            value = f[name][i] if name in f else K.V1_DEFAULTS[name]
            item[name] = value.decode() if isinstance(value, bytes) else str(value)
        return item

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def close(self) -> None:
        """Close open file handles (they reopen on the next access)."""
        for f in self._files.values():
            f.close()
        self._files = {}

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def shard_paths(root="data") -> list[Path]:
    """Sealed shards under ``<root>/shards`` in name order."""
    return sorted(Path(root, "shards").glob("shard-*.h5"))


def shard_number(path) -> int:
    """Sequence number of a shard file ``shard-NNNNN.h5``."""
    return int(Path(path).stem.split("-")[1])


def shard_attributes(settings: dict, basis: str, auxbasis: str, xc: str) -> dict:
    """File attributes of a new shard: schema version, units, level of theory and every label setting.

    Parameters
    ----------
    settings : dict
        Every setting of the labelling run (stored as JSON; a run refuses to add to shards with other settings).
    basis, auxbasis, xc : str
        Orbital basis, auxiliary basis of the stored coefficients, functional.
    """
    import pyscf

    return {
        "schema_version": K.SCHEMA_VERSION,
        "units_length": "angstrom",
        "units_energy": "hartree",
        "basis": basis,
        "auxbasis": auxbasis,
        "xc": xc,
        "fit_metric": "coulomb",
        "pyscf_version": pyscf.__version__,
        "coeffs_dtype": "float32",
        "settings": json.dumps(settings),
    }


def write_shard(path, records: list[dict], attributes: dict) -> None:
    """Write records into a new compressed HDF5 shard (temporary name, then renamed into place).

    Parameters
    ----------
    path : path
        Destination; must not exist (shards are never rewritten).
    records : list of dict
        One per structure, keyed by :mod:`scfguess.data.keys`: ``numbers`` (n,), ``positions`` (n, 3) Å,
        ``coeffs`` (naux,), ``spin_coeffs`` (naux,) (zeros for closed shells), every scalar and string field.
    attributes : dict
        File attributes, from :func:`shard_attributes`.

    Raises
    ------
    FileExistsError
        ``path`` exists.
    ValueError
        No records, or a record without a field of the schema.
    """
    import h5py

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"shard {path} exists and shards are never rewritten.")
    if not records:
        raise ValueError("a shard needs at least one structure.")
    needed = (K.NUMBERS_KEY, K.POSITIONS_KEY, K.COEFFS_KEY, K.SPIN_COEFFS_KEY, *K.SCALAR_FIELDS, *K.STRING_FIELDS)
    for r in records:
        missing = [name for name in needed if name not in r]
        if missing:
            raise ValueError(f"record {r.get(K.STRUCTURE_ID_KEY, '?')} lacks the fields {missing}.")
    tmp = path.with_name(path.name + ".tmp")
    comp = {"compression": "gzip", "compression_opts": 6, "shuffle": True}
    with h5py.File(tmp, "w") as f:
        for name, value in attributes.items():
            f.attrs[name] = value
        f.attrs["n_structures"] = len(records)
        atom_off = np.concatenate([[0], np.cumsum([len(r[K.NUMBERS_KEY]) for r in records])])
        coeff_off = np.concatenate([[0], np.cumsum([len(r[K.COEFFS_KEY]) for r in records])])
        f.create_dataset(K.ATOM_OFFSETS_KEY, data=atom_off.astype(np.int64))
        f.create_dataset(K.COEFF_OFFSETS_KEY, data=coeff_off.astype(np.int64))
        f.create_dataset(K.NUMBERS_KEY, data=np.concatenate([r[K.NUMBERS_KEY] for r in records]).astype(np.int8),
                         **comp)
        f.create_dataset(K.POSITIONS_KEY, data=np.concatenate([r[K.POSITIONS_KEY] for r in records]), **comp)
        for name in (K.COEFFS_KEY, K.SPIN_COEFFS_KEY):
            f.create_dataset(name, data=np.concatenate([r[name] for r in records]).astype(np.float32), **comp)
        for name in K.SCALAR_FIELDS:
            f.create_dataset(name, data=np.array([r[name] for r in records]), **comp)
        for name in K.STRING_FIELDS:
            f.create_dataset(name, data=[str(r[name]) for r in records], dtype=h5py.string_dtype(), **comp)
    os.replace(tmp, path)
