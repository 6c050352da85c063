"""The ``scfguess`` command: run a molecule from the ML guess, list models, show a demo.

::

    scfguess run FILE [--basis def2-svp] [--cart] [--xc pbe] [--charge Q] [--spin 2S] [--compare minao]
                      [--model NAME] [--json] [--chkfile PATH] [--molden PATH]
    scfguess models
    scfguess demo
    scfguess --version

``run`` reads every structure of FILE (XYZ/extXYZ with ``charge=``/``spin=``, SDF/MOL, ASE
database, or a folder of them), runs PySCF DFT from the ML guess and prints energy, SCF
cycles and times; ``--compare GUESS`` runs the same calculation from PySCF's guess GUESS
side by side. ``--charge`` and ``--spin`` replace what the file says before anything is
checked, so a closed-shell ion can be run from a plain XYZ file. ``--json`` prints one JSON
object instead of the tables; ``--chkfile`` and ``--molden`` write the orbitals of the
ML-started run (PySCF chkfile, Molden file). ``demo`` runs the bundled aspirin (RDKit ETKDGv3,
seed 0xC0FFEE, MMFF94) against ``minao``; without an installed model it shows the oracle guess
(the fitted converged density, what a perfect model would give) and says so.

Threads: PySCF and torch use ``OMP_NUM_THREADS`` threads when it is set, else PySCF's
default. Bad input ends with one sentence on stderr and exit code 2 (a usage error prints the
usage line first); an SCF that does not converge gives exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from importlib import resources
from pathlib import Path

from scfguess.errors import MissingExtraError
from scfguess.scf import PYSCF_GUESSES, ScfSettings

#: PySCF guesses ``--compare`` offers.
COMPARE_GUESSES = PYSCF_GUESSES

DEMO_FILE = "aspirin.xyz"


class UsageError(ValueError):
    """A command-line usage error; ``usage`` is the usage text of the (sub)command."""

    def __init__(self, message, usage=""):
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of exiting (main prints the usage line and exits 2)."""

    commands: dict = {}

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help).", self.format_usage())

    def parse_args(self, args=None, namespace=None):
        """As argparse, but an unknown option is reported with the usage of the subcommand it was given to."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            where = self.commands.get(getattr(parsed, "command", None), self)
            where.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def _version() -> str:
    import pyscf

    from scfguess import __version__

    return f"scfguess {__version__} (PySCF {pyscf.__version__})"


def _parser():
    p = _Parser(prog="scfguess", description="PySCF DFT started from an ML electron-density guess.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run the molecules of a file from the ML guess")
    run.add_argument("file", help="XYZ/extXYZ, SDF/MOL, ASE .db, or a folder of them")
    _add_settings(run)
    run.add_argument("--charge", type=int, help="total charge, applied before any check (default: from the file, "
                     "else 0)")
    run.add_argument("--spin", type=int, help="2S = N_alpha - N_beta, negative for more beta electrons (default: "
                     "from the file, else 0)")
    run.add_argument("--compare", metavar="GUESS", help=f"also run from a PySCF guess ({', '.join(COMPARE_GUESSES)})")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    run.add_argument("--chkfile", metavar="PATH", help="write the orbitals of the ML-started run as a PySCF chkfile "
                     "(several molecules: PATH with the molecule id before the extension)")
    run.add_argument("--molden", metavar="PATH", help="write the orbitals of the ML-started run as a Molden file "
                     "(several molecules: as --chkfile)")
    models = sub.add_parser("models", help="list the installed density models and whether each can be loaded")
    demo = sub.add_parser("demo", help="aspirin, ML (or oracle) guess against minao")
    p.commands = {"run": run, "models": models, "demo": demo}
    demo.add_argument("--model", help="density model name or folder (default: the default model)")
    return p


def _add_settings(p):
    p.add_argument("--basis", default="def2-svp", help="orbital basis (default def2-svp)")
    p.add_argument("--cart", action="store_true", help="Cartesian d, f ... functions (6-31G* as published) instead "
                   "of spherical ones")
    p.add_argument("--xc", default="pbe", help="functional (default pbe)")
    p.add_argument("--model", help="density model name or folder (default: the default model)")
    p.add_argument("--no-density-fit", dest="density_fit", action="store_false",
                   help="exact Coulomb/exchange instead of RI")
    d = ScfSettings()
    p.add_argument("--grids-level", type=int, default=d.grids_level, help=f"PySCF DFT grid level (default {d.grids_level})")
    p.add_argument("--conv-tol", type=float, default=d.conv_tol,
                   help=f"SCF energy threshold, Hartree (default {d.conv_tol:g})")
    p.add_argument("--max-cycle", type=int, default=d.max_cycle, help=f"maximum SCF cycles (default {d.max_cycle})")
    p.add_argument("--max-memory", type=int, default=d.max_memory,
                   help=f"MB PySCF may use (default {d.max_memory})")


def set_threads():
    """Give PySCF and torch ``OMP_NUM_THREADS`` threads when it is set; return the count used."""
    from pyscf import lib

    value = os.environ.get("OMP_NUM_THREADS")
    if value is not None:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {value!r}.")
        lib.num_threads(int(value))
    import torch

    torch.set_num_threads(lib.num_threads())
    return lib.num_threads()


def _run_one(mf, guess, model=None):
    """Run ``mf`` from ``guess`` ("ml", "oracle" with ``model`` the reference SCF, or a PySCF guess name).

    Returns
    -------
    dict
        guess, cycles, converged, energy (Hartree), guess_s, scf_s, info (``scfguess_info`` of an ML guess).
    """
    from scfguess.guess import oracle_guess
    from scfguess.hook import apply

    t0 = time.perf_counter()
    if guess == "ml":
        dm = apply(mf, model, fallback=None).get_init_guess()
    elif guess == "oracle":
        dm = oracle_guess(model, mf)
    else:
        dm = mf.get_init_guess(key=guess)
    t1 = time.perf_counter()
    mf.kernel(dm0=dm)
    t2 = time.perf_counter()
    return {"guess": guess, "cycles": int(mf.cycles), "converged": bool(mf.converged), "energy": float(mf.e_tot),
            "guess_s": t1 - t0, "scf_s": t2 - t1, "info": getattr(mf, "scfguess_info", None)}


def _print_table(title, rows, out):
    print(title, file=out)
    print(f"  {'guess':<8} {'cycles':>6} {'converged':>9} {'energy (Hartree)':>19} {'guess s':>8} {'SCF s':>8} "
          f"{'total s':>8}", file=out)
    for r in rows:
        print(f"  {r['guess']:<8} {r['cycles']:>6d} {'yes' if r['converged'] else 'NO':>9} {r['energy']:>19.10f} "
              f"{r['guess_s']:>8.2f} {r['scf_s']:>8.2f} {r['guess_s'] + r['scf_s']:>8.2f}", file=out)
    for r in rows:
        if r["info"]:
            print(f"  {r['guess']} guess: inference {r['info']['inference_seconds']:.2f} s, conversion "
                  f"{r['info']['conversion_seconds']:.2f} s", file=out)
    if len(rows) == 2:
        new, old = rows
        saved = old["cycles"] - new["cycles"]
        t_new, t_old = new["guess_s"] + new["scf_s"], old["guess_s"] + old["scf_s"]
        ratio = new["cycles"] / max(old["cycles"], 1)
        print(f"  {new['guess']} vs {old['guess']}: {saved} cycle(s) saved (ratio {ratio:.2f}), time ratio "
              f"{t_new / t_old:.2f}, energy difference {new['energy'] - old['energy']:+.1e} Hartree", file=out)


def _title(structure, args, mf):
    fit = "RI" if args.density_fit else "exact J/K"
    cart = ", Cartesian" if getattr(args, "cart", False) else ""
    return (f"{structure.id}: {structure.formula}, {structure.natoms} atoms, charge {structure.charge}, "
            f"spin {structure.spin}, {args.xc.upper()}/{args.basis} ({fit}{cart}), {mf.mol.nao} basis functions")


#: ScfSettings field -> the option that sets it, for error messages.
_OPTION_OF = {"conv_tol": "--conv-tol", "max_cycle": "--max-cycle", "max_memory": "--max-memory"}


def _settings(args) -> ScfSettings:
    """The SCF settings of the command line; a value ScfSettings refuses becomes a sentence naming the option."""
    try:
        return ScfSettings(density_fit=args.density_fit, grids_level=args.grids_level, conv_tol=args.conv_tol,
                           max_cycle=args.max_cycle, max_memory=args.max_memory)
    except ValueError as exc:
        text = str(exc)
        for field, option in _OPTION_OF.items():
            if text.startswith(field + " "):
                text = option + text[len(field):]
        raise ValueError(text) from None


def _build(structure, args, settings=None):
    from scfguess.scf import build_scf

    settings = _settings(args) if settings is None else settings
    return build_scf(structure, args.basis, args.xc, settings, cart=bool(getattr(args, "cart", False)))


def _load_model(name):
    from scfguess.model.registry import load_model

    try:
        return load_model(name)
    except OSError as exc:
        raise ValueError(f"cannot read density model {name or '(default)'}: {exc.strerror or exc}.") from None
    except ValueError as exc:
        if "format_version" in str(exc) or "sha256" in str(exc):
            raise
        raise ValueError(f"cannot read density model {name or '(default)'}: {exc}.") from None


def _check_covered(structure, model):
    from scfguess.errors import UnsupportedElementError

    missing = set(structure.symbols) - set(model.elements)
    if missing:
        covered = ", ".join(model.elements)
        raise UnsupportedElementError(missing, what=f"the density model {model.name} (elements {covered})")


def _output_path(path, structure_id, several):
    """Where ``--chkfile``/``--molden`` go for one molecule: PATH, or PATH with ``-<id>`` before its extension."""
    path = Path(path)
    if not several:
        return path
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", structure_id)
    return path.with_name(f"{path.stem}-{safe}{path.suffix}")


def _check_writable(path, option):
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {option} {str(path)!r}: it is a folder.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {option} {str(path)!r}: folder {str(folder)!r} does not exist.")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write {option} {str(path)!r}: folder {str(folder)!r} is not writable.")


def _write_orbitals(mf, chkfile=None, molden=None):
    """Write the orbitals of a finished SCF: PySCF chkfile (``scf`` and ``mol`` groups) and/or Molden file."""
    if chkfile is not None:
        from pyscf.scf import chkfile as chk

        Path(chkfile).unlink(missing_ok=True)  # a fresh file, not PySCF's append
        chk.save_mol(mf.mol, str(chkfile))
        chk.dump_scf(mf.mol, str(chkfile), mf.e_tot, mf.mo_energy, mf.mo_coeff, mf.mo_occ)
    if molden is not None:
        from pyscf.tools import molden as molden_io

        molden_io.from_scf(mf, str(molden))


def _json_row(r):
    info = r["info"] or {}
    row = {"guess": r["guess"], "cycles": r["cycles"], "converged": r["converged"], "energy": r["energy"],
           "guess_seconds": r["guess_s"], "scf_seconds": r["scf_s"], "total_seconds": r["guess_s"] + r["scf_s"]}
    for key in ("model", "model_sha256", "load_seconds", "inference_seconds", "conversion_seconds", "fock_builds",
                "k_builds"):
        if key in info:
            row[key] = info[key]
    return row


def cmd_run(args, out):
    from scfguess.structures import read_structures

    if args.compare is not None and args.compare.lower() not in COMPARE_GUESSES:
        raise ValueError(f"unknown guess {args.compare!r} for --compare; choose from {', '.join(COMPARE_GUESSES)}.")
    settings = _settings(args)
    structures = read_structures(args.file, charge=args.charge, spin=args.spin)
    several = len(structures) > 1
    outputs = {}
    for option, value in (("--chkfile", args.chkfile), ("--molden", args.molden)):
        if value is not None:
            for s in structures:
                path = _output_path(value, s.id, several)
                _check_writable(path, option)
                outputs.setdefault(s.id, {})[option] = path
    model = _load_model(args.model)
    jobs = []
    for s in structures:  # check everything before the first SCF
        jobs.append((s, _build(s, args, settings)))
        _check_covered(s, model)
    set_threads()
    ok = True
    report = {"scfguess": _version(), "basis": args.basis, "xc": args.xc, "cart": bool(args.cart),
              "settings": settings.as_dict(), "model": {"name": model.name, "sha256": model.sha256}, "molecules": []}
    for s, mf in jobs:
        rows = [_run_one(mf, "ml", model)]
        written = outputs.get(s.id, {})
        _write_orbitals(mf, written.get("--chkfile"), written.get("--molden"))
        if args.compare:
            rows.append(_run_one(_build(s, args, settings), args.compare.lower()))
        if args.json:
            report["molecules"].append({
                "id": s.id, "formula": s.formula, "natoms": s.natoms, "charge": s.charge, "spin": s.spin,
                "nao": int(mf.mol.nao), "runs": [_json_row(r) for r in rows],
                "chkfile": str(written["--chkfile"]) if "--chkfile" in written else None,
                "molden": str(written["--molden"]) if "--molden" in written else None})
        else:
            _print_table(_title(s, args, mf) + f"; model {model.name} ({model.sha256[:12]})", rows, out)
            for option, path in written.items():
                print(f"  {option[2:]}: {path} (orbitals of the ML-started run)", file=out)
        ok = ok and all(r["converged"] for r in rows)
    if args.json:
        report["converged"] = ok
        print(json.dumps(report, indent=1, allow_nan=False), file=out)
    return 0 if ok else 1


def cmd_models(args, out):
    from scfguess.model.registry import list_models, model_dirs

    models = list_models()
    if not models:
        print(f"no density models installed (searched: {', '.join(map(str, model_dirs())) or 'nothing'}); set "
              "SCFGUESS_MODEL_DIR to a folder of models.", file=out)
        return 0
    for m in models:
        mark = " (default)" if m["default"] else ""
        if m["error"]:
            print(f"{m['name']}{mark}: UNUSABLE: {m['error']}", file=out)
        else:
            print(f"{m['name']}{mark}: format {m['format_version']}, sha256 {str(m['sha256'])[:12]}, "
                  f"auxbasis {m['auxbasis']}, elements {' '.join(m['elements'] or [])}", file=out)
        print(f"  {m['path']}", file=out)
        if m["domain"]:
            print(f"  trained on {m['domain']}", file=out)
        if m["description"]:
            print(f"  {m['description']}", file=out)
    return 0


def demo_structure():
    """The bundled demo molecule (aspirin, package data ``scfguess/examples/aspirin.xyz``)."""
    from scfguess.structures import read_structures

    with resources.as_file(resources.files("scfguess") / "examples" / DEMO_FILE) as path:
        return read_structures(path)[0]


def cmd_demo(args, out):
    from scfguess.errors import ModelNotInstalledError

    structure = demo_structure()
    try:
        model = _load_model(args.model)
    except ModelNotInstalledError as exc:
        model = None
        print(f"{exc} Showing the oracle guess instead: the fitted converged density through the same converter, "
              "what a perfect model would give.", file=out)
    d = ScfSettings()
    settings = argparse.Namespace(basis="def2-svp", xc="pbe", density_fit=d.density_fit, grids_level=d.grids_level,
                                  conv_tol=d.conv_tol, max_cycle=d.max_cycle, max_memory=d.max_memory, cart=False)
    set_threads()
    mf = _build(structure, settings)
    print(f"Running {structure.id} ({structure.natoms} atoms) from minao, then from the "
          f"{'ML' if model else 'oracle'} guess ...", file=out, flush=True)
    reference = _run_one(mf, "minao")
    if model is None:
        first = _run_one(_build(structure, settings), "oracle", mf)
        label = "oracle guess (no model installed)"
    else:
        first = _run_one(_build(structure, settings), "ml", model)
        label = f"model {model.name} ({model.sha256[:12]})"
    _print_table(_title(structure, settings, mf) + f"; {label}", [first, reference], out)
    return 0 if first["converged"] and reference["converged"] else 1


COMMANDS = {"run": cmd_run, "models": cmd_models, "demo": cmd_demo}


def main(argv=None, out=None):
    """Entry point of the ``scfguess`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).
    out : file, optional
        Where results go (default stdout); errors go to stderr.

    Returns
    -------
    int
        0 success, 1 an SCF did not converge, 2 bad input: one sentence on stderr, after the usage line for a
        usage error (a missing or unknown option or value).
    """
    out = sys.stdout if out is None else out
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args, out)
    except UsageError as exc:
        print(exc.usage.rstrip("\n"), file=sys.stderr)
        print(f"scfguess: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError, MissingExtraError) as exc:
        print(f"scfguess: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)


if __name__ == "__main__":
    sys.exit(main())
