"""Time the label SCF with and without a stored DF tensor:  ``python -m workflows.data.label_timing [-n 2]``.

PySCF runs direct RI-J for a pure functional unless the DF tensor has been built; the labelling workflow builds it
first. This command labels ``n`` work-list structures both ways, alternating, ``repeats`` times each, and prints
one JSON object with the seconds, cycles and energies of every run and the mean speed-up. Run it on an otherwise
idle machine: the seconds are the measurement.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from scfguess.data import keys as K


def time_labels(worklist: str, start: int = 2000, n: int = 2, repeats: int = 2) -> dict:
    """Label work-list items ``start .. start+n-1`` with and without the DF tensor, ``repeats`` times each.

    Returns
    -------
    dict
        ``runs``: one entry per structure and variant (seconds of every repeat, cycles, energy in Hartree);
        ``speedup``: mean over structures of (median seconds without) / (median seconds with the tensor);
        ``max_energy_difference``: largest |E_with - E_without| (Hartree).
    """
    from workflows.data.label import label_structure

    with open(worklist) as fh:
        items = [json.loads(line) for i, line in enumerate(fh) if start <= i < start + n]
    runs, speedups, energy_diffs = [], [], []
    for item in items:
        seconds = {True: [], False: []}
        result = {}
        for _ in range(repeats):
            for tensor in (False, True):
                t0 = time.perf_counter()
                rec = label_structure(item, build_df_tensor=tensor)
                seconds[tensor].append(time.perf_counter() - t0)
                result[tensor] = rec
        for tensor in (False, True):
            runs.append({"structure_id": item["structure_id"], "natoms": item["natoms"], "df_tensor": tensor,
                         "seconds": seconds[tensor], "cycles": result[tensor][K.MINAO_CYCLES_KEY],
                         "energy": result[tensor][K.ENERGY_KEY]})
        speedups.append(float(np.median(seconds[False]) / np.median(seconds[True])))
        energy_diffs.append(abs(result[True][K.ENERGY_KEY] - result[False][K.ENERGY_KEY]))
    return {"runs": runs, "speedup": float(np.mean(speedups)), "max_energy_difference": float(max(energy_diffs))}


def main(argv=None) -> int:
    """Command-line entry; prints the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m workflows.data.label_timing", description=__doc__.splitlines()[0])
    parser.add_argument("--worklist", default="data/worklist.jsonl")
    parser.add_argument("--start", type=int, default=2000, help="first work-list line (default 2000)")
    parser.add_argument("-n", type=int, default=2, help="structures (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant (default 2)")
    args = parser.parse_args(argv)
    print(json.dumps(time_labels(args.worklist, args.start, args.n, args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
