"""The command line shared by the per-model checks: ``--model NAME`` and ``--out FILE``, one JSON result.

Used by :mod:`workflows.checks.model_check`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable


def run(argv, description: str, prefix: str, measure: Callable[[object], dict]) -> int:
    """Parse ``--model``/``--out``, load the model, write ``{model, sha256, **measure(model)}`` as JSON and print it.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments (None: ``sys.argv``).
    description : str
        Help text of the command.
    prefix : str
        The default output is ``results/<prefix>-<model name>.json``.
    measure : callable
        ``measure(loaded_model) -> dict`` of JSON-ready results.
    """
    from scfguess.model.registry import load_model

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=None, help="model name (default: the default model)")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON file (default results/{prefix}-NAME.json)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    result = {"model": model.name, "sha256": model.sha256, **measure(model)}
    out = args.out or Path("results") / f"{prefix}-{model.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0
