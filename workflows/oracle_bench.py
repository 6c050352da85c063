"""Oracle benchmark: how far the fitted converged density carries the SCF, and what the converter costs.

    python -m workflows.oracle_bench run --n 10 --xc pbe --out results/oracle.jsonl
    python -m workflows.oracle_bench run --n 4 --xc b3lyp --out results/oracle.jsonl
    python -m workflows.oracle_bench run --n 10 --xc b3lyp --variants sad --out results/oracle.jsonl
    python -m workflows.oracle_bench summary results/oracle.jsonl
    python -m workflows.oracle_bench memory --natoms 150

``run`` takes the first N NCI evaluation molecules of 20-30 atoms (ETKDG+MMFF geometries),
runs RKS/def2-SVP with density fitting and PySCF's default SCF settings from minao, then
from the oracle guess (for hybrids once per exchange treatment in ``--variants``;
``pbe-first`` starts from a converged PBE RI-J density matrix instead). Each finished run is appended to a JSON-lines file;
a rerun skips what is there. Timings are only valid on an otherwise idle machine.
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from pyscf import dft

from scfguess.density.converter import convert, hybrid_coefficients
from scfguess.density.fitting import fit_density
from scfguess.structures import from_atoms, to_mole

HYBRID_VARIANTS = ("sad", "diag", "diag:2", "pbe:2", "pbe:4", "pbe-first")


def _molecules(n, min_atoms=20, max_atoms=30):
    from scfbench.nci import embed, evaluation_molecules

    chosen = evaluation_molecules(min_atoms, max_atoms)[:n]
    return [from_atoms(embed(m.smiles), f"nci-{m.index}", charge=0, spin=0, source=m.smiles) for m in chosen]


def _scf(mol, xc):
    """RKS with density fitting and PySCF's default convergence settings, set explicitly."""
    mf = dft.RKS(mol, xc=xc).density_fit()
    mf.conv_tol = 1e-9
    mf.max_cycle = 50
    mf.grids.level = 3
    return mf


def _timed_kernel(mf, dm0):
    t0 = time.perf_counter()
    mf.kernel(dm0=dm0)
    return time.perf_counter() - t0


def _bench_molecule(structure, xc, variants, done, write):
    mol = to_mole(structure, "def2-svp")
    key = (structure.id, xc)
    ref = _scf(mol, xc)
    t0 = time.perf_counter()
    dm0 = ref.get_init_guess(mol, "minao")
    guess_s = time.perf_counter() - t0
    scf_s = _timed_kernel(ref, dm0)
    base = {"molecule": structure.id, "natoms": mol.natm, "nao": mol.nao, "xc": xc}
    if (*key, "minao") not in done:
        write({**base, "guess": "minao", "cycles": ref.cycles, "converged": bool(ref.converged),
               "energy": ref.e_tot, "guess_seconds": guess_s, "scf_seconds": scf_s})
    t0 = time.perf_counter()
    coeffs = fit_density(mol, ref.make_rdm1())
    fit_s = time.perf_counter() - t0
    hybrid = any(hybrid_coefficients(ref))
    for variant in (variants if hybrid else ("oracle",)):
        label = variant if variant == "oracle" else f"oracle/{variant}"
        if (*key, label) in done:
            continue
        mf = _scf(mol, xc)
        builds = {}
        if variant == "pbe-first":
            pbe = _scf(mol, "pbe")
            t0 = time.perf_counter()
            pbe.kernel()
            dm0, guess_s, conv = pbe.make_rdm1(), time.perf_counter() - t0, None
            builds = {"fock_builds": pbe.cycles + 1, "k_builds": 0}
        else:
            conv = convert(mf, coeffs, exchange="auto" if variant == "oracle" else variant)
            dm0, guess_s = conv.dm, conv.seconds
            builds = {"fock_builds": conv.fock_builds, "k_builds": conv.k_builds, "timings": conv.timings}
        scf_s = _timed_kernel(mf, dm0)
        write({**base, "guess": label, "cycles": mf.cycles, "converged": bool(mf.converged),
               "energy": mf.e_tot, "delta_e": mf.e_tot - ref.e_tot, "guess_seconds": guess_s,
               "fit_seconds": fit_s, "scf_seconds": scf_s, **builds})


def run(args):
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            done.add((rec["molecule"], rec["xc"], rec["guess"]))

    def write(record):
        with open(out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        print(f"{record['molecule']:>9} {record['xc']:>6} {record['guess']:>16} cycles={record['cycles']:>3} "
              f"guess={record['guess_seconds']:.1f}s scf={record['scf_seconds']:.1f}s", flush=True)

    variants = tuple(args.variants.split(","))
    unknown = set(variants) - set(HYBRID_VARIANTS)
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(HYBRID_VARIANTS)}")
    for structure in _molecules(args.n):
        for xc in args.xc.split(","):
            hybrid = dft.libxc.is_hybrid_xc(xc)  # the same split as _bench_molecule's hybrid_coefficients
            wanted = ["minao"] + (["oracle/" + v for v in variants] if hybrid else ["oracle"])
            if all((structure.id, xc, g) in done for g in wanted):
                continue
            _bench_molecule(structure, xc, variants, done, write)


def summarise(records):
    """Per (xc, guess): RIC, wall ratio, converter time in SCF cycles, same-energy fraction."""
    minao = {(r["molecule"], r["xc"]): r for r in records if r["guess"] == "minao"}
    rows = {}
    for r in records:
        ref = minao.get((r["molecule"], r["xc"]))
        if r["guess"] == "minao" or ref is None or not ref["converged"]:
            continue
        cycle_s = ref["scf_seconds"] / max(ref["cycles"], 1)
        row = rows.setdefault((r["xc"], r["guess"]), {"ratio": [], "wall": [], "same": [], "overhead": []})
        cycles = r["cycles"] if r["converged"] else 50
        row["ratio"].append(cycles / ref["cycles"])
        row["wall"].append((r["guess_seconds"] + r["scf_seconds"]) / (ref["guess_seconds"] + ref["scf_seconds"]))
        row["same"].append(r["converged"] and abs(r["delta_e"]) < 1e-6)
        row["overhead"].append(r["guess_seconds"] / cycle_s)
    return [{"xc": xc, "guess": g, "n": len(v["ratio"]), "ric": float(np.mean(v["ratio"])),
             "wall_ratio": float(np.mean(v["wall"])), "same_energy": float(np.mean(v["same"])),
             "guess_in_cycles": float(np.mean(v["overhead"]))} for (xc, g), v in sorted(rows.items())]


def summary(args):
    records = [json.loads(line) for line in Path(args.path).read_text().splitlines()]
    print(f"{'xc':>6} {'guess':>18} {'n':>3} {'RIC':>6} {'wall':>6} {'same E':>7} {'guess/cycle':>11}")
    for row in summarise(records):
        print(f"{row['xc']:>6} {row['guess']:>18} {row['n']:>3} {row['ric']:6.3f} {row['wall_ratio']:6.3f} "
              f"{row['same_energy']:7.0%} {row['guess_in_cycles']:11.2f}")


def memory(args):
    """Converter alone on a large NCI evaluation molecule; peak resident memory of this process."""
    from scfbench.nci import embed, evaluation_molecules
    from pyscf import scf

    candidates = evaluation_molecules(args.natoms - 30, args.natoms + 30)
    if not candidates:
        sys.exit(f"no NCI evaluation molecule within 30 atoms of {args.natoms}")
    target = min(candidates, key=lambda m: abs(m.natoms - args.natoms))
    mol = to_mole(from_atoms(embed(target.smiles), f"nci-{target.index}", charge=0, spin=0), "def2-svp")
    mf = dft.RKS(mol, xc="pbe").density_fit()
    t0 = time.perf_counter()
    coeffs = fit_density(mol, scf.hf.init_guess_by_minao(mol))
    fit_s = time.perf_counter() - t0
    conv = convert(mf, coeffs)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"molecule": f"nci-{target.index}", "natoms": mol.natm, "nao": mol.nao,
                      "fit_seconds": round(fit_s, 1), "convert_seconds": round(conv.seconds, 1),
                      "timings": {k: round(v, 1) for k, v in conv.timings.items()},
                      "peak_rss_mb": round(peak_mb)}))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workflows.oracle_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="benchmark minao vs oracle")
    p.add_argument("--n", type=int, default=10, help="number of molecules (20-30 atoms)")
    p.add_argument("--xc", default="pbe,b3lyp", help="comma-separated functionals")
    p.add_argument("--variants", default=",".join(HYBRID_VARIANTS),
                   help="exchange treatments for hybrids (oracle/<variant>), and pbe-first")
    p.add_argument("--out", default="results/oracle.jsonl")
    p.set_defaults(func=run)
    p = sub.add_parser("summary", help="table from a results file")
    p.add_argument("path")
    p.set_defaults(func=summary)
    p = sub.add_parser("memory", help="converter peak memory on a large molecule")
    p.add_argument("--natoms", type=int, default=150)
    p.set_defaults(func=memory)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
