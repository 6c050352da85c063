"""Command line of SCFbench: ``scfbench sets``, ``scfbench run`` and ``scfbench report``.

Every input is checked before anything is written; a bad one ends the command with one clear message on
stderr and exit code 2.

Example
-------
$ scfbench run --molecules nci-21-25 --limit 6 --guess minao,sap,pbe-first --basis def2-svp --xc pbe \\
      --workers 2 --out results.sqlite
$ scfbench report results.sqlite --plot figures/

With an ``oracle`` guess, ``run`` keeps the converged ``minao`` density matrices in ``<out without
extension>.refs/`` so that the ``oracle`` jobs (run last) start from them instead of converging the same SCF again;
the folder can be deleted. Without one, nothing is written beside the store.

A molecule with an element that a requested density model (``ml``, ``ml:NAME``) does not cover stops ``run`` before
any SCF, naming the molecule and the element; with ``--skip-unsupported`` such molecules are left out of the run
(every guess) and recorded in the store, and ``report`` lists them and leaves them out of every ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from scfguess.errors import MissingExtraError, require

__all__ = ["main"]


class UsageError(ValueError):
    """Bad command-line input (exit code 2); ``usage`` is the usage text when argparse refused the command line."""

    def __init__(self, message, usage=""):
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help).", self.format_usage())


def _version() -> str:
    import importlib.metadata

    import pyscf

    try:
        version = importlib.metadata.version("scfguess")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"scfbench {version} (PySCF {pyscf.__version__})"


def _split(text: str, what: str) -> list[str]:
    items = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not items:
        raise UsageError(f"--{what} is empty.")
    return items


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands ``sets``, ``run``, ``report``)."""
    from scfbench.guesses import GUESS_KINDS
    from scfguess.scf import ScfSettings

    d = ScfSettings()
    parser = _Parser(prog="scfbench", description="SCFbench: how many SCF cycles does an initial guess save?")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("sets", help="list the built-in molecule sets")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("run", help="run a benchmark (resumes where a previous run with the same --out stopped)")
    p.add_argument("--molecules", required=True, help="set names and/or paths (XYZ, extXYZ, SDF, ASE db, folder), "
                   "comma-separated")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--limit", type=int, help="first N molecules of each set")
    sel.add_argument("--sample", type=int, help="N molecules of each set drawn at random (see --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--guess", default="minao", help=f"comma-separated guesses: {', '.join(GUESS_KINDS)}, ml:MODEL; "
                   "ml and oracle with +EXCHANGE for hybrids (ml+sad, ml+diag:2)")
    p.add_argument("--basis", default="def2-svp", help="comma-separated orbital bases (default def2-svp)")
    p.add_argument("--xc", default="pbe", help="comma-separated functionals (default pbe)")
    p.add_argument("--density-fit", action=argparse.BooleanOptionalAction, default=d.density_fit,
                   help="density fitting in the SCF (default on)")
    p.add_argument("--auxbasis", default=None, help="SCF auxiliary basis (default: PySCF's choice for the basis)")
    p.add_argument("--conv-tol", type=float, default=d.conv_tol, help=f"energy threshold, Ha (default {d.conv_tol})")
    p.add_argument("--conv-tol-grad", type=float, default=d.conv_tol_grad,
                   help="gradient threshold (default sqrt(conv-tol))")
    p.add_argument("--max-cycle", type=int, default=d.max_cycle, help=f"default {d.max_cycle}")
    p.add_argument("--grids-level", type=int, default=d.grids_level, help=f"default {d.grids_level}")
    p.add_argument("--diis-space", type=int, default=d.diis_space, help=f"default {d.diis_space}")
    p.add_argument("--max-memory", type=int, default=d.max_memory, help=f"PySCF memory, MB (default {d.max_memory})")
    par = p.add_mutually_exclusive_group()
    par.add_argument("--workers", type=int, default=1, help="local worker processes (default 1: in this process)")
    par.add_argument("--scheduler", help="address of a running Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--gpu", action="store_true", help="run the SCF through gpu4pyscf")
    p.add_argument("--stability", action=argparse.BooleanOptionalAction, default=True,
                   help="internal stability analysis of each converged open shell, after the timing (default on; "
                        "it can cost several SCFs: with --no-stability the report says 'not analysed')")
    p.add_argument("--skip-unsupported", action="store_true",
                   help="leave out (and list in the report) molecules with an element a requested density model "
                        "does not cover, instead of stopping")
    p.add_argument("--out", required=True, help="results store (SQLite; created or resumed); with the oracle guess, "
                   "converged minao density matrices go to OUT-without-extension.refs/")

    p = sub.add_parser("report", help="summarise a results store")
    p.add_argument("paths", nargs="+", metavar="STORE",
                   help="results store(s) written by scfbench run; several are reported as one (e.g. every size)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--csv", metavar="FILE", help="write one row per run to FILE")
    p.add_argument("--plot", metavar="DIR", help="write PNG figures to DIR")
    p.add_argument("--tol", type=float, default=1e-6, help="same-energy tolerance, Ha (default 1e-6)")
    p.add_argument("--guess", metavar="LABELS", help="only minao and these guesses, comma-separated (LABEL@SHA8: one "
                   "model's records of a label stored with several models)")
    return parser


#: Packages of the ``bench`` extra that scfbench needs (molecule sets, parallel runs, progress, plots).
BENCH_EXTRA = ("rdkit", "tqdm", "distributed", "matplotlib")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        if exc.usage:
            print(exc.usage.rstrip("\n"), file=sys.stderr)
        print(f"scfbench: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    commands = {"sets": _cmd_sets, "run": _cmd_run, "report": _cmd_report}
    try:
        for module in BENCH_EXTRA:
            require(module, "bench", "scfbench")
        return commands[args.command](args)
    except (ValueError, MissingExtraError) as exc:  # ValueError includes UsageError and UnsupportedElementError
        print(f"scfbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # an unwritable --out/--csv/--plot path, an unreachable --scheduler
        print(f"scfbench: error: {exc}", file=sys.stderr)
        return 2


def _cmd_sets(args) -> int:
    from scfbench.sets import describe_sets

    rows = describe_sets()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'set':<{width}}  {'molecules':>9}  {'atoms':>9}  description")
    for r in rows:
        atoms = f"{r['min_atoms']}-{r['max_atoms']}"
        print(f"{r['name']:<{width}}  {r['molecules']:>9}  {atoms:>9}  {r['description']}")
    return 0


def _validate_run(args):
    """Check every input of ``run`` before anything is written or run.

    Returns
    -------
    tuple
        (structures, bases, xcs, guesses, settings, model_sha256, skipped): the molecules to run, and the
        molecules left out by ``--skip-unsupported`` as dicts (molecule, geometry_sha256, formula, elements,
        guess).
    """
    from scfbench.guesses import parse_guess
    from scfguess.scf import ScfSettings, check_xc
    from scfbench.sets import resolve_molecules
    from scfbench.store import check_store
    from scfguess.structures import check_basis, check_charge_spin, default_ecp, ecp_core_electrons

    guesses = [parse_guess(g) for g in _split(args.guess, "guess")]
    bases = _split(args.basis, "basis")
    xcs = _split(args.xc, "xc")
    for xc in xcs:
        check_xc(xc)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}.")
    settings = ScfSettings(density_fit=args.density_fit, auxbasis=args.auxbasis, conv_tol=args.conv_tol,
                           conv_tol_grad=args.conv_tol_grad, max_cycle=args.max_cycle, grids_level=args.grids_level,
                           diis_space=args.diis_space, max_memory=args.max_memory, gpu=args.gpu)
    if args.gpu:
        try:
            import gpu4pyscf  # noqa: F401
        except ImportError:
            raise UsageError("--gpu needs gpu4pyscf, which is not installed (pip install gpu4pyscf-cuda12x).") from None
    model_sha256, models = {}, {}
    for g in guesses:
        if g.kind == "ml":
            models[g.label] = _load_model(g)
            model_sha256[g.label] = str(models[g.label].sha256)
    if args.auxbasis is not None:
        _check_auxbasis(args.auxbasis)
    check_store(args.out)
    structures = resolve_molecules(args.molecules, limit=args.limit, sample=args.sample, seed=args.seed)
    structures, skipped = _model_coverage(structures, models, args.skip_unsupported)
    symbols = sorted({s for st in structures for s in st.symbols})
    for basis in bases:
        check_basis(basis, symbols)
        for st in structures:  # the electrons an ECP replaces change what charge and spin are possible
            ecp = ecp_core_electrons(st.symbols, default_ecp(basis, st.symbols))
            if any(ecp):
                check_charge_spin(st.numbers, st.charge, st.spin, ecp, where=f"molecule {st.id!r} in {basis}")
    return structures, bases, xcs, guesses, settings, model_sha256, skipped


def _load_model(spec):
    from scfguess.model.registry import load_model

    try:
        return load_model(spec.model)
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        raise UsageError(f"guess {spec.label!r}: {exc}") from None


def _model_coverage(structures, models: dict, skip: bool):
    """Split off the molecules with an element some density model lacks: refused, or left out with ``skip``.

    Parameters
    ----------
    structures : list of Structure
    models : dict
        Guess label -> loaded model; a model without ``elements`` is taken to cover everything.
    skip : bool
        ``--skip-unsupported``.

    Returns
    -------
    kept : list of Structure
    skipped : list of dict
        molecule, geometry_sha256, formula, elements (not covered), guess (the first label that lacks them).

    Raises
    ------
    UsageError
        A molecule is not covered and ``skip`` is False; the message names the first such molecule and element.
    """
    kept, skipped = [], []
    for st in structures:
        for label, model in models.items():
            covered = getattr(model, "elements", None)
            missing = sorted(set(st.symbols) - set(covered)) if covered is not None else []
            if missing:
                if not skip:
                    others = sum(1 for s in structures if covered is not None and set(s.symbols) - set(covered))
                    more = f" (and {others - 1} more molecule(s))" if others > 1 else ""
                    raise UsageError(f"molecule {st.id!r} has element(s) {', '.join(missing)} that the density "
                                     f"model of guess {label!r} ({model.name}) does not cover{more}; use "
                                     "--skip-unsupported to leave such molecules out.")
                skipped.append({"molecule": st.id, "geometry_sha256": st.geometry_hash(), "formula": st.formula,
                                "elements": missing, "guess": label})
                break
        else:
            kept.append(st)
    return kept, skipped


def _check_auxbasis(name: str) -> None:
    from pyscf import gto

    try:
        gto.basis.load(name, "H")
    except Exception:  # noqa: BLE001 - PySCF raises assorted errors for unknown names
        raise UsageError(f"unknown auxiliary basis {name!r}.") from None


def _warn_other_pyscf(records: list[dict]) -> None:
    """Warn (stderr) when a resumed store holds records of another PySCF version than the one running now."""
    import pyscf

    from scfbench.report import mixed_versions_note, pyscf_versions

    note = mixed_versions_note(pyscf_versions(records), running=pyscf.__version__)
    if note:
        print(f"scfbench: warning: {note}.", file=sys.stderr)


def _cmd_run(args) -> int:
    from scfbench.jobs import plan_jobs, run_job
    from scfbench.parallel import run_jobs
    from scfbench.store import ResultStore

    structures, bases, xcs, guesses, settings, model_sha256, skipped = _validate_run(args)
    # Converged minao density matrices for the oracle jobs, next to the store (large; not results to keep).
    reference_dir = None
    if any(g.kind == "oracle" for g in guesses):
        reference_dir = f"{os.path.splitext(args.out)[0]}.refs"
    jobs = plan_jobs(structures, bases, xcs, guesses, settings, model_sha256, reference_dir, args.stability)
    store = ResultStore(args.out, create=True)
    stored = failed = 0
    lost = []
    t0 = time.perf_counter()
    try:
        store.add_skipped(skipped)
        for entry in skipped:
            print(f"scfbench: left out {entry['molecule']} ({entry['formula']}): element(s) "
                  f"{', '.join(entry['elements'])} not covered by the model of {entry['guess']!r}", file=sys.stderr)
        done = store.keys()
        pending = [j for j in jobs if j.key not in done]
        if done and pending:
            _warn_other_pyscf(store.records())
        print(f"scfbench: {len(structures)} molecules x {len(bases)} basis x {len(xcs)} xc x {len(guesses)} guesses "
              f"= {len(jobs)} jobs; {len(jobs) - len(pending)} already in {args.out}; running {len(pending)}",
              file=sys.stderr)
        where = args.scheduler or (f"{args.workers} workers" if args.workers > 1 else "in process")
        for job, record, error in run_jobs(run_job, pending, workers=args.workers, scheduler=args.scheduler,
                                           desc=f"scfbench ({where})"):
            if error is not None:  # the worker process died or the cluster failed; the job is retried next run
                lost.append((job, error))
                continue
            stored += store.add(record)
            failed += record["status"] != "ok"
    except KeyboardInterrupt:
        print(f"\nscfbench: interrupted; {stored} new records are safe in {args.out}; "
              "rerun the same command to resume.", file=sys.stderr)
        return 130
    finally:
        store.close()
    print(f"scfbench: stored {stored} records ({failed} failed SCF) in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    if lost:
        for job, error in lost[:5]:
            print(f"scfbench: lost {job.structure.id} / {job.guess.label}: {error}", file=sys.stderr)
        print(f"scfbench: {len(lost)} jobs were lost to worker failures; rerun the same command to retry them.",
              file=sys.stderr)
        return 1
    return 0


def _cmd_report(args) -> int:
    from scfbench.report import build_report, format_table, to_json, write_csv, write_plots
    from scfbench.store import ResultStore

    if not args.tol > 0:
        raise UsageError(f"--tol must be positive, got {args.tol}.")
    records, skipped, keys = [], [], set()
    for path in args.paths:
        with ResultStore(path, readonly=True) as store:
            stored = store.records()
            skipped += store.skipped()
        if not stored:
            raise UsageError(f"results store {path!r} holds no records yet.")
        records += [r for r in stored if r["key"] not in keys]  # a job stored twice counts once
        keys.update(r["key"] for r in stored)
    if args.guess:
        from scfbench.metrics import select_guesses

        labels = [g.strip() for g in args.guess.split(",") if g.strip()]
        chosen = select_guesses(records, labels)
        if all(r["guess"] == "minao" for r in chosen):
            stored = sorted({r["guess"] for r in records} - {"minao"})
            raise UsageError(f"no records of {', '.join(labels)} in the store(s); stored guesses: {', '.join(stored)}.")
        records = chosen
    report = build_report(records, tol=args.tol, skipped=skipped)
    if args.csv:
        write_csv(report, args.csv)
    if args.plot:
        for path in write_plots(report, args.plot, records):
            print(f"scfbench: wrote {path}", file=sys.stderr)
    print(to_json(report) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
