"""Reading the labelled density shards: a lazy, picklable torch ``Dataset``.

Shards are HDF5 files written by :mod:`workflows.label`; every field is named in
:mod:`scfguess.data.keys`. Per-atom arrays and coefficients of all structures of a shard are
concatenated and sliced with ``atom_offsets`` / ``coeff_offsets``.

Example
-------
>>> ds = DensityDataset(sorted(Path("data/shards").glob("*.h5")), split="train")
>>> sample = ds[0]; sample["coeffs"].shape
"""

from __future__ import annotations

from pathlib import Path

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
        Missing attribute, or ``schema_version`` other than :data:`scfguess.data.keys.SCHEMA_VERSION`.
    """
    missing = [name for name in K.REQUIRED_ATTRIBUTES if name not in attrs]
    if missing:
        raise ValueError(f"{path} is not a density shard: attributes {missing} are missing.")
    if int(attrs["schema_version"]) != K.SCHEMA_VERSION:
        raise ValueError(f"{path} has schema_version {attrs['schema_version']}; this reader handles "
                         f"{K.SCHEMA_VERSION}.")
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
    An item holds ``numbers`` (n,) int64, ``positions`` (n, 3) float64 Å, ``coeffs`` (naux,)
    float32, every scalar field as a 0-d array, and the string fields as ``str``.
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
        item = {
            K.NUMBERS_KEY: f[K.NUMBERS_KEY][a0:a1].astype(np.int64),
            K.POSITIONS_KEY: f[K.POSITIONS_KEY][a0:a1],
            K.COEFFS_KEY: f[K.COEFFS_KEY][c0:c1],
        }
        for name in K.SCALAR_FIELDS:
            item[name] = np.asarray(f[name][i])
        for name in K.STRING_FIELDS:
            value = f[name][i]
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
