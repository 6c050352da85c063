"""Compare installed models on one set of labelled structures (no SCF): Coulomb error per atom, MAE, RMSE.

    python -m workflows.evaluate nequip-s-v1 nequip-l-v2 [--shards "data/shards/shard-0000?.h5"] [--split val]

Every model is scored on the same structures (by default the validation split of shards 0-9), so models trained on
different data snapshots can be compared; a model's own card reports the split it was trained with. Prints one JSON
object: model name -> metrics of :func:`workflows.train.evaluate` (Coulomb error per atom in Hartree, coefficient
MAE and RMSE, RMSE per element), plus the reference-superposition-only baseline of the first model.
"""

from __future__ import annotations

import argparse
import json

DEFAULT_SHARDS = ("data/shards/shard-0000?.h5",)


def evaluate_models(names, shards=DEFAULT_SHARDS, split: str = "val", extra=None) -> dict:
    """Metrics of each installed model ``names`` on the ``split`` structures of ``shards``.

    ``extra`` maps labels to further in-memory modules (e.g. an ensemble not yet saved) scored the same way.
    """
    import torch

    from scfguess.model import DensityModel
    from scfguess.registry import load_model
    from workflows.train import CoulombMetrics, evaluate, load_structures, resolve_shards

    structures = [s for s in load_structures(resolve_shards(shards)) if s["split"] == split]
    if not structures:
        raise ValueError(f"no {split!r} structures in {list(shards)}.")
    out = {"structures": len(structures), "shards": list(shards), "split": split}
    modules = {}
    for name in names:
        model = load_model(name)
        modules[model.name] = model.module
    modules.update(extra or {})
    metrics = None
    for i, (label, module) in enumerate(modules.items()):
        if metrics is None:
            metrics = CoulombMetrics(module.auxbasis, 1000.0)
        out[label] = evaluate(module, structures, metrics)
        if i == 0 and isinstance(module, DensityModel) and module.config.delta:
            with torch.no_grad():  # the model with its correction switched off: references alone
                saved = [p.clone() for p in module.parameters()]
                for head in module.heads:
                    for p in head.parameters():
                        p.zero_()
                out["reference superposition only"] = evaluate(module, structures, metrics)
                for p, s in zip(module.parameters(), saved):
                    p.copy_(s)
        module.eval()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="installed model names")
    parser.add_argument("--shards", nargs="+", default=list(DEFAULT_SHARDS), help="shard files or glob patterns")
    parser.add_argument("--split", default="val", choices=("train", "val"))
    args = parser.parse_args(argv)
    print(json.dumps(evaluate_models(args.models, tuple(args.shards), args.split), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
