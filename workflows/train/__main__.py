"""Train a density model on labelled shards:  ``python -m workflows.train CONFIG.yaml [--fresh]``.

The YAML file holds the fields of :class:`workflows.train.config.TrainConfig` (``model:`` holds those of
:class:`scfguess.model.ModelConfig`); :mod:`workflows.train.loop` describes the run folder and resuming.
``--precompute-metrics N`` only fills in the run's on-disk orbital-gradient metrics with N processes.
"""

from __future__ import annotations

import argparse
import json
import sys

from workflows.train.config import TrainConfig


def main(argv=None) -> int:
    """Command-line entry: ``python -m workflows.train CONFIG.yaml [--fresh]``; prints a JSON summary line."""
    from workflows.train.loop import train
    from workflows.train.metrics import precompute_gradient_metrics

    parser = argparse.ArgumentParser(prog="python -m workflows.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML file of TrainConfig fields")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser.add_argument("--precompute-metrics", type=int, metavar="N",
                        help="only compute the missing gradient metrics (gradient_metric_dir), N processes")
    args = parser.parse_args(argv)
    cfg = TrainConfig.from_yaml(args.config)
    if args.precompute_metrics:
        done = precompute_gradient_metrics(cfg, args.precompute_metrics, progress=not args.no_progress)
        print(json.dumps({"computed": done, "directory": str(cfg.metric_dir())}))
        return 0
    command = "python -m workflows.train " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = train(cfg, resume=not args.fresh, command=command, progress=not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("epochs", "best_epoch", "stopped", "n_train", "n_val")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
