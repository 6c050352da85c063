"""What the labelled data holds and what it cost:  ``python -m workflows.data.report [--first-shard K]``.

Prints one JSON object: the manifest's counts (structures, distinct molecules, parents, by source, split and
element, failures, bytes on disk), the atoms of every element (what the model's per-element heads train on), the
wider domain's counts (``domain``: cations, anions, zwitterions, charged ones of 21-40 atoms, open shells), and
the label cost of the shards ``--first-shard`` to ``--last-shard``: the mean seconds per structure of one
single-thread worker (SCF + fit, the stored ``scf_seconds``) and the throughput of ``--workers`` such workers,
workers × 3600 / mean seconds, in structures per hour. The seconds are a measurement only for shards labelled while
nothing else ran.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from scfguess.data import keys as K
from scfguess.data.shards import read_strings

MANIFEST_COUNTS = ("structures", "distinct_molecules", "parent_molecules", "by_source", "by_split",
                   "structures_with_element", "failures", "bytes")


DOMAIN_COUNTS = ("cations", "anions", "zwitterions", "charged_21_40_atoms", "open_shell")


def _domain_counts(shard) -> Counter:
    """Cations (charge > 0), anions (< 0), zwitterions (source ``zwitterion``), those three with 21-40 atoms, and
    open shells (2S > 0) of one open shard."""
    charge = shard[K.CHARGE_KEY][()]
    spin = shard[K.SPIN_KEY][()]
    source = np.array(read_strings(shard[K.SOURCE_KEY]))
    size = np.diff(shard[K.ATOM_OFFSETS_KEY][()])
    charged = (charge != 0) | (source == "zwitterion")
    return Counter({"cations": int(np.sum(charge > 0)), "anions": int(np.sum(charge < 0)),
                    "zwitterions": int(np.sum(source == "zwitterion")),
                    "charged_21_40_atoms": int(np.sum(charged & (size >= 21) & (size <= 40))),
                    "open_shell": int(np.sum(spin > 0))})


def data_report(root="data", first_shard: int = 0, last_shard: int | None = None, workers: int = 2) -> dict:
    """Counts of the data folder ``root`` and the label cost of its shards numbered ``first_shard``..``last_shard``.

    Returns
    -------
    dict
        The manifest's counts (:data:`MANIFEST_COUNTS`), ``atoms_with_element``, ``domain``
        (:data:`DOMAIN_COUNTS`), and ``cost``: ``shards``
        (first and last number), ``structures``, ``mean_seconds`` (per structure, one worker), ``mean_atoms``,
        ``workers`` and ``structures_per_hour``.
    """
    import h5py
    from ase.data import chemical_symbols

    from scfguess.data.shards import check_attributes, shard_number, shard_paths

    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} does not exist: no labelled data in {root}.")
    manifest = json.loads(manifest_path.read_text())
    atoms, domain, seconds, natoms, numbers_of_cost = Counter(), Counter(), [], [], []
    for path in shard_paths(root):
        with h5py.File(path, "r") as f:
            check_attributes(f.attrs, str(path))
            numbers = f[K.NUMBERS_KEY][()]
            atoms.update({chemical_symbols[int(z)]: int(n) for z, n in zip(*np.unique(numbers, return_counts=True))})
            domain.update(_domain_counts(f))
            number = shard_number(path)
            if first_shard <= number and (last_shard is None or number <= last_shard):
                numbers_of_cost.append(number)
                seconds += f[K.SCF_SECONDS_KEY][()].tolist()
                natoms += np.diff(f[K.ATOM_OFFSETS_KEY][()]).tolist()
    if not seconds:
        upto = "" if last_shard is None else last_shard
        raise ValueError(f"no shard numbered {first_shard}..{upto} in {root / 'shards'}.")
    mean_seconds = float(np.mean(seconds))
    return {
        **{key: manifest[key] for key in MANIFEST_COUNTS},
        "atoms_with_element": dict(sorted(atoms.items())),
        "domain": {key: domain[key] for key in DOMAIN_COUNTS},
        "cost": {"shards": [min(numbers_of_cost), max(numbers_of_cost)], "structures": len(seconds),
                 "mean_seconds": mean_seconds, "mean_atoms": float(np.mean(natoms)), "workers": workers,
                 "structures_per_hour": workers * 3600.0 / mean_seconds},
    }


def main(argv=None) -> int:
    """Command line: print the report as JSON."""
    parser = argparse.ArgumentParser(prog="python -m workflows.data.report", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="data folder (manifest.json, shards/)")
    parser.add_argument("--first-shard", type=int, default=0, help="label cost from this shard number on")
    parser.add_argument("--last-shard", type=int, default=None, help="label cost up to this shard number")
    parser.add_argument("--workers", type=int, default=2, help="workers of the throughput figure (default 2)")
    args = parser.parse_args(argv)
    try:
        report = data_report(args.data, args.first_shard, args.last_shard, args.workers)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"data_report: {exc}\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
