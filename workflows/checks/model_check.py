"""Model facts for the model card that SCFbench does not measure: inference time and charged molecules.

    python -m workflows.checks.model_check [--model NAME] [--out benchmarks/model-check/model-check-NAME.json]

- Inference: median wall time of ``model.predict`` (float32, one torch thread, model already loaded) on the
  NCI evaluation molecule closest to 60 atoms, over 20 calls after 2 warm-up calls.
- Ions: the training data is neutral and closed-shell. For NH4+ and OH- (PBE/def2-SVP, RI-J) the SCF cycles from
  minao, from the ML guess with the electron-count projection (``fix_charge=True``; the default ``"auto"`` projects
  whenever the count is off by more than 1e-4 electrons, as it is for an ion) and without it,
  and whether each reached the minao energy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ION_GEOMETRIES = {
    "NH4+": ("N 0 0 0; H 0.6276 0.6276 0.6276; H -0.6276 -0.6276 0.6276; H -0.6276 0.6276 -0.6276; "
             "H 0.6276 -0.6276 -0.6276", 1),
    "OH-": ("O 0 0 0; H 0 0 0.97", -1),
}


def inference_time(model, natoms: int = 60, calls: int = 20) -> dict:
    """Median seconds of one prediction for the evaluation molecule with the atom count closest to ``natoms``."""
    import torch

    from scfbench.sets import set_entries

    entry = min(set_entries("nci-41-60") + set_entries("nci-61-100"), key=lambda e: (abs(e.natoms - natoms), e.id))
    s = entry.builder()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(2):
            model.predict(s.numbers, s.positions)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            model.predict(s.numbers, s.positions)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return {"molecule": s.id, "natoms": s.natoms, "formula": s.formula, "median_seconds": statistics.median(times),
            "max_seconds": max(times), "calls": calls, "torch_threads": 1}


def ion_cycles(model) -> dict:
    """SCF cycles of NH4+ and OH- from minao and from the ML guess with and without electron-count projection."""
    from pyscf import dft, gto

    from scfguess.guess import ml_guess

    out = {}
    for name, (atom, charge) in ION_GEOMETRIES.items():
        mol = gto.M(atom=atom, charge=charge, basis="def2-svp", verbose=0)
        ref = dft.RKS(mol, xc="pbe").density_fit().run()
        row = {"charge": charge, "minao": int(ref.cycles)}
        for fix in (True, False):
            mf = dft.RKS(mol, xc="pbe").density_fit()
            mf.kernel(dm0=ml_guess(mf, model, fix_charge=fix).dm)
            key = "ml_projected" if fix else "ml_unprojected"
            row[key] = int(mf.cycles)
            row[f"{key}_delta_e"] = float(mf.e_tot - ref.e_tot)
            row[f"{key}_converged"] = bool(mf.converged)
        out[name] = row
    return out


def main(argv=None) -> int:
    """Command line: measure, write ``{model, sha256, inference, ions}`` as JSON and print it."""
    from scfguess.model.registry import load_model

    parser = argparse.ArgumentParser(prog="python -m workflows.checks.model_check", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the default model)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default benchmarks/model-check/model-check-NAME.json)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    result = {"model": model.name, "sha256": model.sha256, "inference": inference_time(model),
              "ions": ion_cycles(model)}
    out = args.out or Path("benchmarks/model-check") / f"model-check-{model.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
