"""Reports from a results store: terminal table, JSON object, CSV of runs and PNG figures.

The JSON object is ``{"settings": {...}, "summary": [...], "by_size": [...], "runs": [...], "skipped": [...]}``
with the summary keys of :data:`scfbench.metrics.SUMMARY_KEYS` (``converged`` and ``same_energy`` are fractions)
and the run keys of :data:`scfbench.metrics.RUN_KEYS` (``converged`` is a bool) plus each run's own ``settings``;
NaN is written as null. ``settings`` holds what all runs share. ``skipped`` lists the molecules a run left out
(``scfbench run --skip-unsupported``: an element a density model does not cover); their records, if the store
has any, are in no summary row and no run list. ``pyscf_versions`` counts the records per PySCF version: a
store resumed under another release compares energies across releases (see :func:`mixed_versions_note`).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

from scfbench.metrics import RUN_KEYS, S2_TOLERANCE, SIZE_BINS, SUMMARY_KEYS, annotate, summarize

__all__ = ["build_report", "without_skipped", "pyscf_versions", "mixed_versions_note", "core_share", "format_table",
           "to_json", "write_csv", "write_plots"]

#: The reference paper's RIC (PBE/def2-SVP against minao), drawn as marks over the atom range each was measured on:
#: 0.667 on drug-like molecules of 26-60 atoms, 0.75-0.78 on QMugs molecules of 100-200 atoms.
REFERENCE_RIC = (((26, 60), (0.667, 0.667), "reference paper, 26-60 atoms"),
                 ((100, 200), (0.75, 0.78), "reference paper, QMugs 100-200 atoms"))

_EXTRA_RUN_KEYS = ("formula", "status", "error", "inference_seconds", "conversion_seconds", "guess_fock_builds",
                   "guess_k_builds", "guess_energy", "guess_energy_error", "guess_gradient_norm", "model_sha256",
                   "reference_cycles", "pbe_cycles", "nao", "reference_stable", "started", "finished",
                   "threads", "core_share")
#: A one-thread run that got less of its core's time than this while timed shared it with another process (a
#: multi-threaded run's share also drops in PySCF's serial parts, so only one-thread runs are judged).
MIN_CORE_SHARE = 0.9


def core_share(record: dict) -> float | None:
    """CPU seconds of the run's threads over (wall seconds × threads): about 1 when each thread had a core to
    itself, lower when another process competed; None for records written before ``cpu_seconds`` was stored."""
    cpu, wall, threads = (record.get("cpu_seconds"), record.get("total_seconds"),
                          record.get("versions", {}).get("threads"))
    if cpu is None or not wall or not threads:
        return None
    return cpu / (wall * threads)


def _shared(dicts: list[dict]) -> dict:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(k in d and d[k] == v for d in dicts[1:])}


def pyscf_versions(records: list[dict]) -> dict[str, int]:
    """Number of records per PySCF version, e.g. ``{"2.14.0": 28, "2.15.0": 2}`` (``"unknown"`` without one)."""
    return dict(Counter(r.get("versions", {}).get("pyscf", "unknown") for r in records))


def mixed_versions_note(versions: dict[str, int], running: str | None = None) -> str | None:
    """One sentence when records come from more than one PySCF version, else None.

    Grids and functionals change between releases (an open shell's energy moved by 6e-7 Ha from 2.14 to 2.15 at
    grids level 3), and the same-energy check would measure that instead of the guesses.

    Parameters
    ----------
    versions : dict
        Records per PySCF version, as from :func:`pyscf_versions`.
    running : str, optional
        The version of a run about to add records to the store (``scfbench run`` resuming): the note is then about
        the stored versions other than this one.
    """
    others = versions if running is None else {v: n for v, n in versions.items() if v != running}
    if len(others) < (2 if running is None else 1):
        return None
    listed = ", ".join(f"{v} ({n} record{'s' * (n != 1)})" for v, n in sorted(others.items()))
    what = (f"records from several PySCF versions: {listed}" if running is None
            else f"the store holds records of PySCF {listed} and this run uses {running}")
    return (f"{what}; a molecule's energy can differ by about 1e-6 Ha between releases, so compare guesses run with "
            "one version (resume a store with the version that started it, or start a new store)")


def without_skipped(records: list[dict], skipped: list[dict] | None) -> list[dict]:
    """The records whose molecule (id and geometry) is not among ``skipped``."""
    if not skipped:
        return list(records)
    left_out = {(e["molecule"], e.get("geometry_sha256")) for e in skipped}
    return [r for r in records if (r["molecule"], r.get("geometry_sha256")) not in left_out]


def build_report(records: list[dict], tol: float = 1e-6, skipped: list[dict] | None = None) -> dict:
    """The report as a dict (see the module docstring); NaN still as float NaN.

    Parameters
    ----------
    records : list of dict
        Records from :meth:`scfbench.store.ResultStore.records`.
    tol : float
        Same-energy tolerance (Hartree).
    skipped : list of dict, optional
        Molecules left out (:meth:`scfbench.store.ResultStore.skipped`); their records are dropped and they are
        listed under ``skipped``.
    """
    records = without_skipped(records, skipped)
    annotated = annotate(records)
    summary, by_size = summarize(annotated, tol)
    settings = _shared([r.get("settings", {}) for r in records])
    settings["versions"] = _shared([r.get("versions", {}) for r in records])
    settings["same_energy_tolerance"] = tol
    runs = []
    for a in annotated:
        run = {k: a.get(k) for k in RUN_KEYS}
        run["converged"] = bool(a.get("converged")) and a.get("status") == "ok"
        run.update({k: a.get(k) for k in _EXTRA_RUN_KEYS})
        run["core_share"] = core_share(a)
        run["threads"] = a.get("versions", {}).get("threads")
        run["settings"] = a.get("settings", {})
        runs.append(run)
    return {"settings": settings, "summary": [_ordered(s, SUMMARY_KEYS) for s in summary],
            "by_size": [_ordered(s, ("bin", *SUMMARY_KEYS)) for s in by_size], "runs": runs,
            "skipped": list(skipped or []), "pyscf_versions": pyscf_versions(records)}


def _ordered(row: dict, first: tuple) -> dict:
    return {**{k: row[k] for k in first}, **{k: v for k, v in row.items() if k not in first}}


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(report: dict) -> str:
    """JSON text of a report, NaN and infinities written as null."""
    return json.dumps(_clean(report), indent=1, allow_nan=False)


_COLUMNS = (("guess", "guess", "{}"), ("n", "n", "{:d}"), ("conv", "converged", "{:.0%}"),
            ("sameE", "same_energy", "{:.0%}"), ("cycles", "mean_cycles", "{:.1f}"), ("RIC", "ric", "{:.3f}"),
            ("median", "median_ratio", "{:.3f}"), ("eff", "effective_ratio", "{:.3f}"),
            ("wall", "wall_ratio", "{:.3f}"), ("ovh/cyc", "overhead_cycles", "{:.2f}"),
            ("gnorm", "guess_gradient_norm", "{:.3g}"), ("s/cyc", "cycle_seconds", "{:.2f}"),
            ("failed", "failed", "{:d}"), ("excl", "excluded", "{:d}"))


def _cell(fmt: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _table(rows: list[dict], columns) -> list[str]:
    cells = [[_cell(fmt, row[key]) for _, key, fmt in columns] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(columns)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, ((h, _, _), w) in enumerate(zip(columns, widths)))
    out = [line, "-" * len(line)]
    for c in cells:
        out.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return out


#: Failed runs listed by name in the terminal table (the rest are counted; all are in --csv and --json).
MAX_LISTED_FAILURES = 20


def _one_line(text, width=160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _stability(stable) -> str:
    return {True: "stable", False: "unstable"}.get(stable, "not analysed")


def format_table(report: dict) -> str:
    """Terminal table: one block per (basis, xc), the breakdown by atom-count bin when there is more than one bin,
    then the failed runs with their errors and the molecules left out."""
    lines = []
    pairs = list(dict.fromkeys((s["basis"], s["xc"]) for s in report["summary"]))
    for basis, xc in pairs:
        rows = [s for s in report["summary"] if (s["basis"], s["xc"]) == (basis, xc)]
        lines.append(f"{xc} / {basis}   (ratios against minao; same energy: |dE| < "
                     f"{report['settings']['same_energy_tolerance']:g} Ha, open shells |d<S^2>| < {S2_TOLERANCE:g})")
        lines.extend(_table(rows, _COLUMNS))
        lines.append("")
        bins = [label for label, _, _ in SIZE_BINS
                if any((s["basis"], s["xc"], s["bin"]) == (basis, xc, label) for s in report["by_size"])]
        for label in bins if len(bins) > 1 else []:  # one bin would repeat the table above
            rows = [s for s in report["by_size"] if (s["basis"], s["xc"], s["bin"]) == (basis, xc, label)]
            lines.append(f"  atoms {label}")
            lines.extend("  " + t for t in _table(rows, _COLUMNS))
        if len(bins) == 1:
            lines.append(f"  all molecules have {bins[0]} atoms")
        lines.append("")
    failed = [r for r in report["runs"] if r.get("status") != "ok"]
    if failed:
        lines.append(f"failed runs ({len(failed)}; counted as not converged, max_cycle cycles, in RIC and eff):")
        for r in failed[:MAX_LISTED_FAILURES]:
            lines.append(f"  {r['molecule']} / {r['guess']} / {r['xc']}/{r['basis']}: {_one_line(r.get('error'))}")
        if len(failed) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(failed) - MAX_LISTED_FAILURES} more (all in --csv and --json)")
        lines.append("")
    other_states = [r for r in report["runs"] if r.get("guess") != "minao" and r.get("spin")
                    and (abs(r.get("delta_e") or 0.0) >= report["settings"]["same_energy_tolerance"]
                         or abs(r.get("delta_s2") or 0.0) > S2_TOLERANCE)]
    if other_states:
        lines.append(f"open shells converged to another state than minao's ({len(other_states)}; internal stability "
                     "of each converged state):")
        for r in other_states:
            lines.append(f"  {r['molecule']} / {r['guess']} / {r['xc']}/{r['basis']}: dE {r['delta_e']:+.2e} Ha, "
                         f"d<S^2> {r['delta_s2']:+.3f}; {_stability(r.get('stable'))} (minao's: "
                         f"{_stability(r.get('reference_stable'))})")
        lines.append("")
    shared = [r for r in report["runs"] if r.get("core_share") is not None and r["core_share"] < MIN_CORE_SHARE
              and r.get("threads") == 1]
    if shared:
        listed = ", ".join(f"{r['molecule']} / {r['guess']} ({r['core_share']:.0%})" for r in shared[:5])
        lines.append(f"warning: {len(shared)} one-thread run{'s' * (len(shared) != 1)} got less than "
                     f"{MIN_CORE_SHARE:.0%} of their core's time while timed (another process competed; core_share "
                     f"in --csv), so their wall times overstate the cost: {listed}{' ...' * (len(shared) > 5)}.")
        lines.append("")
    version_note = mixed_versions_note(report.get("pyscf_versions", {}))
    if version_note:
        lines.extend([f"warning: {version_note}.", ""])
    if report.get("skipped"):
        lines.append(f"left out ({len(report['skipped'])} molecules, in no ratio): elements a density model does "
                     "not cover")
        for e in report["skipped"]:
            lines.append(f"  {e['molecule']} ({e.get('formula', '?')}): {', '.join(e.get('elements', []))} not "
                         f"covered by the model of {e.get('guess', 'ml')!r}")
        lines.append("")
    lines.append("RIC: mean cycles ratio to minao (non-converged = max_cycle); eff: with Fock builds hidden in the "
                 "guess; wall: (guess + SCF s) ratio; ovh/cyc: guess time in SCF cycles; gnorm: geometric mean "
                 "orbital-gradient norm of the guess (Ha); s/cyc: mean SCF seconds per cycle (a guess whose s/cyc is "
                 "far from minao's on the same molecules was timed at another machine speed); excl: no converged "
                 "minao reference.")
    return "\n".join(lines)


def write_csv(report: dict, path: str | Path) -> None:
    """One row per run: :data:`RUN_KEYS` and the extra run fields (settings as JSON text)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [*RUN_KEYS, *_EXTRA_RUN_KEYS, "settings"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for run in _clean(report["runs"]):
            writer.writerow({**run, "settings": json.dumps(run["settings"], sort_keys=True)})


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write (PNG, 120 dpi) and close a figure; return its path."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(report: dict, folder: str | Path, records: list[dict]) -> list[Path]:
    """PNG figures: the cycle ratio and the wall ratio of every molecule against its atom count, with each guess's
    mean per size bin as a line (and the reference paper's RIC as marks for PBE/def2-SVP), cycles distribution per
    guess, wall ratio per size bin.

    Titles name the functional(s) and basis set(s); atom counts and cycles get integer ticks.

    Parameters
    ----------
    report : dict
        From :func:`build_report`.
    folder : str or Path
        Created if missing.
    records : list of dict
        The raw records (for the per-molecule ratios); those of ``report["skipped"]`` molecules are dropped.

    Returns
    -------
    list of Path
        ``ric_vs_atoms.png``, ``wall_ratio_vs_atoms.png``, ``cycles_distribution.png``, ``wall_ratio_by_size.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    annotated = annotate(without_skipped(records, report.get("skipped")))
    groups = list(dict.fromkeys((s["basis"], s["xc"], s["guess"]) for s in report["summary"]))
    pairs = list(dict.fromkeys((b, x) for b, x, _ in groups))
    multi = len(pairs) > 1
    method = ", ".join(f"{x.upper()}/{b}" for b, x in pairs)

    def label(basis, xc, guess):
        return f"{guess} ({xc}/{basis})" if multi else guess

    paths = []
    for key, bin_key, ylabel, title, name in (
            ("cycle_ratio", "ric", "cycles / cycles(minao)", "Iteration ratio per molecule", "ric_vs_atoms.png"),
            ("wall_ratio", "wall_ratio", "(guess + SCF time) / minao", "Wall-time ratio per molecule",
             "wall_ratio_vs_atoms.png")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        markers = "os^vD<>phX*"
        for i, (basis, xc, guess) in enumerate(groups):
            if guess == "minao":
                continue
            pts = [(r["natoms"], r[key], r["size_bin"]) for r in annotated
                   if (r["basis"], r["xc"], r["guess"]) == (basis, xc, guess) and not math.isnan(r[key])]
            if not pts:
                continue
            x, y, size_bins = zip(*pts)
            dots = ax.scatter(x, y, s=18, marker=markers[i % len(markers)], label=label(basis, xc, guess), alpha=0.6)
            atoms_by_bin = {}
            for n, b in zip(x, size_bins):
                atoms_by_bin.setdefault(b, []).append(n)
            means = sorted((sum(atoms_by_bin[row["bin"]]) / len(atoms_by_bin[row["bin"]]), row[bin_key])
                           for row in report["by_size"]
                           if (row["basis"], row["xc"], row["guess"]) == (basis, xc, guess)
                           and row["bin"] in atoms_by_bin and row[bin_key] is not None)
            if means:  # each bin's mean at the mean atom count of its molecules
                ax.plot(*zip(*means), color=dots.get_facecolor()[0][:3], marker="D", markersize=6, lw=1.5,
                        label=f"{label(basis, xc, guess)}, mean per size bin")
        if key == "cycle_ratio" and ("def2-svp", "pbe") in {(b.lower(), x.lower()) for b, x in pairs}:
            for (lo, hi), (y0, y1), text in REFERENCE_RIC:
                ax.fill_between([lo, hi], [y0, y0], [y1 + 0.004, y1 + 0.004], color="black", alpha=0.35, label=text)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("atoms")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}, {method}")
        ax.legend(fontsize=7, ncol=2)
        paths.append(_save(plt, fig, folder / name))

    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(groups) + 2), 4.5))
    data = [[r["cycles"] for r in annotated if (r["basis"], r["xc"], r["guess"]) == g and r.get("cycles") is not None]
            for g in groups]
    keep = [i for i, d in enumerate(data) if d]
    if keep:
        ax.boxplot([data[i] for i in keep], tick_labels=[label(*groups[i]) for i in keep])
    ax.set_ylabel("SCF cycles")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Cycles per guess, {method}")
    ax.tick_params(axis="x", labelrotation=45)
    paths.append(_save(plt, fig, folder / "cycles_distribution.png"))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = [b for b, _, _ in SIZE_BINS if any(s["bin"] == b for s in report["by_size"])]
    width = 0.8 / max(1, len(groups))
    for i, g in enumerate(groups):
        values = []
        for b in bins:
            row = next((s for s in report["by_size"] if (s["basis"], s["xc"], s["guess"], s["bin"]) == (*g, b)), None)
            values.append(row["wall_ratio"] if row is not None and row["wall_ratio"] is not None else math.nan)
        ax.bar([j + i * width for j in range(len(bins))], values, width, label=label(*g))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(bins))], bins)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("atoms")
    ax.set_ylabel("(guess + SCF time) / minao")
    ax.set_title(f"Wall-time ratio per size bin, {method}")
    ax.legend(fontsize=7, ncol=2)
    paths.append(_save(plt, fig, folder / "wall_ratio_by_size.png"))
    return paths
