"""Are two SCFbench stores the same measurement?  ``python -m workflows.checks.same_records BEFORE AFTER``.

Pairs the records of two stores by (molecule, basis, functional, guess) and compares what a guess decides:
SCF cycles, convergence, energy (|ΔE| below ``--energy-tol``, Hartree) and every recorded SCF setting. Timings
and versions are not compared. Prints one line per pair and exits 1 when any pair differs or is missing, so a
refactoring can be checked against a store made before it.
"""

from __future__ import annotations

import argparse
import sys

from scfbench.store import ResultStore

#: Record fields that must agree exactly.
EXACT = ("cycles", "converged", "status", "natoms", "charge", "spin", "nao", "nelectron", "guess_fock_builds",
         "guess_k_builds")


def _key(record: dict) -> tuple:
    return record["molecule"], record["basis"].lower(), record["xc"].lower(), record["guess"]


def compare(before: list[dict], after: list[dict], energy_tol: float = 1e-8) -> list[str]:
    """One line per record pair; lines of differing or unmatched pairs start with ``DIFF``.

    Parameters
    ----------
    before, after : list of dict
        Records of the two stores.
    energy_tol : float
        Largest allowed difference of the converged energies and of the guess energies, Hartree.
    """
    a = {_key(r): r for r in before}
    b = {_key(r): r for r in after}
    lines = []
    for key in sorted(a.keys() | b.keys()):
        ra, rb = a.get(key), b.get(key)
        label = " ".join(map(str, key))
        if ra is None or rb is None:
            lines.append(f"DIFF {label}: only in {'after' if ra is None else 'before'}")
            continue
        problems = [f"{f} {ra.get(f)} != {rb.get(f)}" for f in EXACT if ra.get(f) != rb.get(f)]
        if ra["settings"] != rb["settings"]:
            problems.append("settings differ")
        for field in ("energy", "guess_energy"):
            if ra.get(field) is not None and rb.get(field) is not None and abs(ra[field] - rb[field]) > energy_tol:
                problems.append(f"{field} differs by {rb[field] - ra[field]:+.2e} Ha")
        de = (rb["energy"] - ra["energy"]) if ra.get("energy") is not None and rb.get("energy") is not None else None
        state = "DIFF" if problems else "same"
        detail = "; ".join(problems) if problems else f"cycles {ra['cycles']}, dE {de:+.1e} Ha"
        lines.append(f"{state} {label}: {detail}")
    return lines


def main(argv=None) -> int:
    """Command line (see the module doc); exit 0 when every pair is the same."""
    parser = argparse.ArgumentParser(prog="python -m workflows.checks.same_records", description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--energy-tol", type=float, default=1e-8, help="Hartree (default 1e-8)")
    args = parser.parse_args(argv)
    with ResultStore(args.before, readonly=True) as sa, ResultStore(args.after, readonly=True) as sb:
        lines = compare(sa.records(), sb.records(), args.energy_tol)
    print("\n".join(lines))
    differing = sum(line.startswith("DIFF") for line in lines)
    print(f"{len(lines) - differing} of {len(lines)} pairs the same")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
