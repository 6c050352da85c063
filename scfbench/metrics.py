"""Benchmark metrics: pairing every run with the minao run of the same molecule, and the summary statistics.

Definitions (per (basis, xc, guess) group, and per atom-count bin)
------------------------------------------------------------------
A run's *reference* is the ``minao`` run of the same molecule and geometry, basis, functional and settings.
Molecules whose reference is missing or did not converge are left out of the ratios and counted in ``excluded``.

``ric``
    mean over molecules of cycles_guess / cycles_minao; a guess run that did not converge or failed counts as
    ``max_cycle`` cycles.
``median_ratio``
    median of the same ratios.
``effective_ratio``
    mean of fock_builds_guess / cycles_minao, where fock_builds counts the SCF cycles plus the Fock builds hidden
    in the guess (converter, PBE run of ``pbe-first``); a failed or non-converged run counts as ``max_cycle``
    plus its hidden builds.
``wall_ratio``
    mean of (guess + SCF seconds) / (minao guess + SCF seconds), over runs that did not fail.
``overhead_cycles``
    mean guess seconds divided by the seconds of one SCF cycle of the reference (its SCF seconds / cycles).
``cycle_seconds``
    mean over the runs that did not fail of their SCF seconds per cycle. A cycle of the same molecule costs about the
    same whatever the guess, so a guess whose ``cycle_seconds`` differs much from minao's on the same molecules was
    timed at another machine speed or load, and its wall ratio is not comparable.
``guess_gradient_norm``
    geometric mean of the orbital-gradient norm of the initial guess (Hartree), over runs that recorded it; SCF
    cycles go roughly with its logarithm, so it separates guesses whose cycle counts tie.
``converged``
    fraction of runs that converged (failed runs count as not converged).
``same_energy``
    fraction of runs with a converged reference that converged to within ``tol`` Hartree of its energy and, for
    open shells, to within :data:`S2_TOLERANCE` of its ⟨S²⟩ (the same state, not another spin-contaminated one).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np

__all__ = ["S2_TOLERANCE", "SIZE_BINS", "size_bin", "annotate", "summarize", "geometric_mean", "SUMMARY_KEYS",
           "RUN_KEYS"]

#: Largest |⟨S²⟩ - ⟨S²⟩_minao| of an open-shell run counted as the same state.
S2_TOLERANCE = 0.01

#: Atom-count bins (inclusive upper bounds) of the size breakdown.
SIZE_BINS: tuple[tuple[str, int, float], ...] = (
    ("<=20", 1, 20), ("21-40", 21, 40), ("41-60", 41, 60), ("61-100", 61, 100), ("101-200", 101, 200),
    (">200", 201, math.inf),
)

#: Keys of every summary row (JSON ``summary``), in order; other tools read these names.
SUMMARY_KEYS: tuple[str, ...] = ("guess", "basis", "xc", "n", "converged", "same_energy", "mean_cycles", "ric",
                                 "median_ratio", "effective_ratio", "wall_ratio", "overhead_cycles",
                                 "guess_gradient_norm", "cycle_seconds")

#: Keys of every run (JSON ``runs``), in order; other tools read these names.
RUN_KEYS: tuple[str, ...] = ("molecule", "natoms", "charge", "spin", "guess", "basis", "xc", "cycles", "converged",
                             "energy", "delta_e", "s2", "delta_s2", "stable", "guess_seconds", "scf_seconds",
                             "fock_builds")


def size_bin(natoms: int) -> str:
    """Label of the atom-count bin of a molecule with ``natoms`` atoms."""
    for label, lo, hi in SIZE_BINS:
        if lo <= natoms <= hi:
            return label
    raise ValueError(f"no size bin for {natoms} atoms.")


def _pair_key(record: dict) -> tuple:
    settings = {k: v for k, v in record.get("settings", {}).items() if k != "auxbasis_resolved"}
    return (record["molecule"], record.get("geometry_sha256"), record["basis"].lower(), record["xc"].lower(),
            json.dumps(settings, sort_keys=True))


def _num(value) -> float:
    return math.nan if value is None else float(value)


def _cycle_seconds(record: dict) -> float:
    """SCF seconds per cycle of one run; NaN for a failed run or one without cycles."""
    if record.get("status") != "ok" or not (record.get("cycles") or 0) > 0:
        return math.nan
    return _num(record.get("scf_seconds")) / float(record["cycles"])


def select_guesses(records: list[dict], labels) -> list[dict]:
    """The records of minao and of the guesses ``labels``: stored labels (``ml``, ``ml:NAME``), or ``LABEL@SHA8``
    for one model's records of a label stored with several models (as :func:`annotate` names them)."""
    wanted = set(labels)
    return [r for r in records if r["guess"] == "minao" or r["guess"] in wanted
            or f"{r['guess']}@{str(r.get('model_sha256'))[:8]}" in wanted]


def annotate(records: list[dict]) -> list[dict]:
    """Copies of the records with ``delta_e`` and the per-molecule ratios against their minao reference.

    Added keys: ``delta_e`` (Hartree, energy minus the reference energy; NaN unless both converged), ``delta_s2``
    (⟨S²⟩ minus the reference's, open shells; NaN otherwise), ``reference_stable`` (the reference's ``stable``),
    ``reference`` (bool: a converged reference exists), ``cycle_ratio``, ``fock_ratio``, ``wall_ratio``,
    ``overhead_cycles``, ``cycle_seconds`` (NaN where undefined), ``size_bin``. A guess label stored with more than one model
    (``ml`` before and after the default model changed) becomes ``LABEL@SHA8`` so that models are never mixed.
    """
    refs = {}
    models = defaultdict(set)  # guess label -> model sha256s stored under it
    for r in records:
        models[r["guess"]].add(r.get("model_sha256"))
    for r in records:
        if r["guess"] == "minao" and r.get("status") == "ok":
            refs[_pair_key(r)] = r
    out = []
    for r in records:
        a = dict(r)
        if len(models[r["guess"]]) > 1:  # e.g. "ml" before and after the default model changed
            a["guess"] = f"{r['guess']}@{str(r.get('model_sha256'))[:8]}"
        ref = refs.get(_pair_key(r))
        has_ref = ref is not None and bool(ref.get("converged")) and (ref.get("cycles") or 0) > 0
        max_cycle = int(r.get("settings", {}).get("max_cycle", 50))
        ok = r.get("status") == "ok"
        a["reference"] = has_ref
        a["size_bin"] = size_bin(int(r["natoms"]))
        a["cycle_seconds"] = _cycle_seconds(r)
        a["delta_e"] = (_num(r.get("energy")) - _num(ref.get("energy"))
                        if has_ref and ok and r.get("converged") else math.nan)
        a["delta_s2"] = (_num(r.get("s2")) - _num(ref.get("s2"))
                         if has_ref and ok and r.get("converged") else math.nan)
        a["reference_stable"] = ref.get("stable") if has_ref else None
        a["cycle_ratio"] = a["fock_ratio"] = a["wall_ratio"] = a["overhead_cycles"] = math.nan
        if has_ref:
            ref_cycles = float(ref["cycles"])
            converged = ok and bool(r.get("converged"))
            cycles = float(r["cycles"]) if converged else float(max_cycle)
            hidden = float(r.get("guess_fock_builds") or 0) if ok else 0.0
            a["cycle_ratio"] = cycles / ref_cycles
            a["fock_ratio"] = (cycles + hidden) / ref_cycles
            if ok:
                ref_time = _num(ref.get("guess_seconds")) + _num(ref.get("scf_seconds"))
                a["wall_ratio"] = (_num(r.get("guess_seconds")) + _num(r.get("scf_seconds"))) / ref_time
                per_cycle = _cycle_seconds(ref)
                a["overhead_cycles"] = _num(r.get("guess_seconds")) / per_cycle if per_cycle > 0 else math.nan
        out.append(a)
    return out


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _median(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def geometric_mean(values) -> float:
    """Geometric mean of the positive, non-NaN values; NaN when there are none."""
    values = [v for v in values if v > 0 and not math.isnan(v)]
    return float(np.exp(np.mean(np.log(values)))) if values else math.nan


def _row(runs: list[dict], tol: float) -> dict:
    n = len(runs)
    with_ref = [r for r in runs if r["reference"]]
    same = [r for r in with_ref if not math.isnan(r["delta_e"]) and abs(r["delta_e"]) < tol
            and not abs(r["delta_s2"]) > S2_TOLERANCE]  # NaN (closed shell) passes
    return {
        "n": n,
        "converged": sum(1 for r in runs if r.get("status") == "ok" and r.get("converged")) / n if n else math.nan,
        "same_energy": len(same) / len(with_ref) if with_ref else math.nan,
        "mean_cycles": _mean([float(r["cycles"]) for r in runs if r.get("status") == "ok"]),
        "ric": _mean([r["cycle_ratio"] for r in with_ref]),
        "median_ratio": _median([r["cycle_ratio"] for r in with_ref]),
        "effective_ratio": _mean([r["fock_ratio"] for r in with_ref]),
        "wall_ratio": _mean([r["wall_ratio"] for r in with_ref]),
        "overhead_cycles": _mean([r["overhead_cycles"] for r in with_ref]),
        "guess_gradient_norm": geometric_mean([_num(r.get("guess_gradient_norm")) for r in runs if r.get("status") == "ok"]),
        "cycle_seconds": _mean([r["cycle_seconds"] for r in runs]),
        "failed": sum(1 for r in runs if r.get("status") != "ok"),
        "excluded": n - len(with_ref),
    }


def summarize(annotated: list[dict], tol: float = 1e-6) -> tuple[list[dict], list[dict]]:
    """Summary rows per (basis, xc, guess), overall and per size bin.

    Parameters
    ----------
    annotated : list of dict
        Output of :func:`annotate`.
    tol : float
        Same-energy tolerance (Hartree).

    Returns
    -------
    summary : list of dict
        One row per (basis, xc, guess) with :data:`SUMMARY_KEYS` plus ``failed`` and ``excluded`` counts.
    by_size : list of dict
        The same per (basis, xc, guess, size bin), with the extra key ``bin``.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in annotated:
        groups[(r["basis"], r["xc"], r["guess"])].append(r)
    order = _guess_order([g for _, _, g in groups])
    keys = sorted(groups, key=lambda k: (k[0].lower(), k[1].lower(), order[k[2]]))
    summary, by_size = [], []
    for basis, xc, guess in keys:
        runs = groups[(basis, xc, guess)]
        summary.append({"guess": guess, "basis": basis, "xc": xc, **_row(runs, tol)})
        for label, _, _ in SIZE_BINS:
            in_bin = [r for r in runs if r["size_bin"] == label]
            if in_bin:
                by_size.append({"guess": guess, "basis": basis, "xc": xc, "bin": label, **_row(in_bin, tol)})
    return summary, by_size


def _guess_order(labels) -> dict[str, int]:
    from scfbench.guesses import GUESS_KINDS

    rank = {g: i for i, g in enumerate(GUESS_KINDS)}
    ordered = sorted(set(labels), key=lambda g: (rank.get(g.split(":")[0].split("@")[0], len(rank)), g))
    return {g: i for i, g in enumerate(ordered)}
