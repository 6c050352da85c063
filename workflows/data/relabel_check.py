"""Re-label stored structures and compare the coefficients with the stored ones.

``python -m workflows.data.relabel_check -n 20`` picks N random structures from the shards (fixed seed),
runs the label SCF again with tight settings (conv_tol 1e-10, grid level 4; ``--same`` uses the
shards' own settings instead, which checks reproducibility) and reports, over all coefficients,
the maximum and mean absolute difference to the stored float32 coefficients, the same for the
energy, and the float32 rounding error of the fresh float64 coefficients (the precision the shards
keep). Run it with ``nice``; its timings are not throughput measurements.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scfguess.data import keys as K


def relabel(paths, n: int = 20, settings=None, seed: int = 0) -> dict:
    """Re-label ``n`` random stored structures and compare.

    Parameters
    ----------
    paths : sequence of path
        Shards.
    n : int
        Structures to re-label (all when fewer are stored).
    settings : workflows.data.label.LabelSettings, optional
        Settings of the re-labelling; default :data:`workflows.data.label.TIGHT`. Use the shards'
        settings to check reproducibility.
    seed : int
        Random choice of structures.

    Returns
    -------
    dict
        ``n``, ``max_abs_coeff_diff``, ``mean_abs_coeff_diff`` (e), ``max_rel_coeff_diff``
        (max |Δc| / max |c|), ``max_abs_energy_diff`` (Hartree), ``max_float32_rounding``,
        ``mean_float32_rounding`` (e), ``seconds``, and ``structures`` (id, max |Δc|, ΔE).
    """
    from scfguess.data.shards import DensityDataset
    from workflows.data.label import TIGHT, label_structure

    settings = TIGHT if settings is None else settings
    ds = DensityDataset(paths)
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(ds), size=min(n, len(ds)), replace=False).tolist())
    diffs, rounding, per = [], [], []
    t0 = time.perf_counter()
    for idx in picks:
        stored = ds[idx]
        item = {"structure_id": stored[K.STRUCTURE_ID_KEY], "source": stored[K.SOURCE_KEY],
                "molecule_id": stored[K.MOLECULE_ID_KEY], "smiles": stored[K.SMILES_KEY],
                "split": stored[K.SPLIT_KEY], "natoms": len(stored[K.NUMBERS_KEY]), "elements": [],
                "numbers": stored[K.NUMBERS_KEY].tolist(), "positions": stored[K.POSITIONS_KEY].tolist()}
        fresh = label_structure(item, settings)
        c_new = fresh[K.COEFFS_KEY]
        c_old = stored[K.COEFFS_KEY].astype(np.float64)
        d = np.abs(c_new - c_old)
        r = np.abs(c_new - c_new.astype(np.float32).astype(np.float64))
        diffs.append(d)
        rounding.append(r)
        per.append({"structure_id": item["structure_id"], "natoms": item["natoms"],
                    "max_abs_coeff_diff": float(d.max()), "max_abs_coeff": float(np.abs(c_new).max()),
                    "energy_diff": float(fresh[K.ENERGY_KEY] - float(stored[K.ENERGY_KEY]))})
    d, r = np.concatenate(diffs), np.concatenate(rounding)
    return {
        "n": len(picks),
        "settings": {"grids_level": settings.grids_level, "conv_tol": settings.conv_tol},
        "max_abs_coeff_diff": float(d.max()),
        "mean_abs_coeff_diff": float(d.mean()),
        "max_rel_coeff_diff": max(p["max_abs_coeff_diff"] / p["max_abs_coeff"] for p in per),
        "max_abs_energy_diff": max(abs(p["energy_diff"]) for p in per),
        "max_float32_rounding": float(r.max()),
        "mean_float32_rounding": float(r.mean()),
        "seconds": time.perf_counter() - t0,
        "structures": per,
    }


def main(argv=None) -> int:
    """Command line: print the comparison as JSON."""
    from workflows.data.label import LabelSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="*", type=Path, help="shard files (default: data/shards/shard-*.h5)")
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--same", action="store_true", help="re-label with the shards' own settings")
    args = parser.parse_args(argv)
    paths = args.shards or sorted(Path("data/shards").glob("shard-*.h5"))
    if not paths:
        parser.error("no shards found")
    settings = None
    if args.same:
        import h5py

        with h5py.File(paths[0], "r") as f:
            settings = LabelSettings(**json.loads(f.attrs["settings"]))
    print(json.dumps(relabel(paths, args.n, settings, args.seed), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
