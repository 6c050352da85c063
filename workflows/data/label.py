"""Label structures with converged PBE/def2-SVP densities fitted in def2-universal-jfit.

``python -m workflows.data.label`` reads a work list written by :mod:`workflows.data.worklist`, runs for each
structure a Kohn-Sham SCF at its charge and spin (RKS for closed shells, UKS for open shells; PBE, def2-SVP with
the def2 ECP where the basis expects one, density fitting, minao guess), fits the converged total density and,
for open shells, the spin density with :func:`scfguess.density.fit_density` (Coulomb metric), and stores both
(shard schema :data:`scfguess.data.keys.SCHEMA_VERSION`).

Storage and operations
----------------------
- Each finished structure is written at once to ``<data>/pending/<structure_id>.npz`` (written to
  a temporary name, then renamed), so a killed run loses only the structure in flight.
- When ``--shard-size`` results are pending they are sealed, in work-list order, into a new
  compressed HDF5 shard ``<data>/shards/shard-NNNNN.h5`` (never rewritten afterwards) and
  ``<data>/manifest.json`` is rebuilt from all shards. SIGTERM or SIGINT stops the run and seals
  whatever is pending; SIGUSR1 seals what is pending after the structure in flight and goes on.
- A restart skips structures already in shards, pending, or in the failure log
  ``<data>/failures.jsonl`` (``--retry-failed`` tries those again). A non-converged SCF is a failure.
- ``--workers N`` runs N local processes and ``--scheduler tcp://…`` a Dask cluster, through
  :func:`scfbench.parallel.run_jobs`; one writer (this process) stores the results.

Example
-------
    OMP_NUM_THREADS=2 python -m workflows.data.label --worklist data/worklist.jsonl --shard-size 100
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import hashlib
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scfguess.data import keys as K
from scfguess.data import write_shard

DEFAULT_DATA = Path("data")


@dataclass(frozen=True)
class LabelSettings:
    """SCF and fitting settings of a label run (all recorded in every shard).

    Attributes
    ----------
    xc, basis, auxbasis : str
        Functional, orbital basis, fitting basis of the stored coefficients.
    scf_auxbasis : str
        Density-fitting basis of the SCF itself (J only for PBE).
    grids_level : int
        PySCF DFT grid level.
    conv_tol : float
        SCF energy convergence threshold (Hartree); ``conv_tol_grad`` is PySCF's default √conv_tol.
    max_cycle : int
        Most SCF iterations.
    init_guess : str
        Initial guess whose cycle count is stored as ``minao_cycles``.
    max_memory : int
        MB PySCF may use.
    """

    xc: str = "pbe"
    basis: str = "def2-svp"
    auxbasis: str = "def2-universal-jfit"
    scf_auxbasis: str = "def2-universal-jfit"
    grids_level: int = 2
    conv_tol: float = 1e-8
    max_cycle: int = 100
    init_guess: str = "minao"
    max_memory: int = 2000

    def scf_settings(self):
        """The :class:`scfguess.scf.ScfSettings` of the label SCF."""
        from scfguess.scf import ScfSettings

        return ScfSettings(auxbasis=self.scf_auxbasis, conv_tol=self.conv_tol, max_cycle=self.max_cycle,
                           grids_level=self.grids_level, max_memory=self.max_memory)


#: Settings of the tight reference used by :mod:`workflows.data.relabel_check`.
TIGHT = LabelSettings(grids_level=4, conv_tol=1e-10)


class NotConvergedError(RuntimeError):
    """The SCF of a structure did not converge within ``max_cycle`` iterations."""


def label_structure(item: dict, settings: LabelSettings = LabelSettings(), build_df_tensor: bool = True) -> dict:
    """Converged SCF and fitted density coefficients of one work-list structure.

    Parameters
    ----------
    item : dict
        Work-list entry (see :class:`workflows.data.worklist.StructureItem`).
    settings : LabelSettings
        SCF and fitting settings.
    build_df_tensor : bool
        Build and keep the DF tensor before the SCF (same result; False leaves PySCF's direct RI-J, for timing).

    Returns
    -------
    dict
        Fields named in :mod:`scfguess.data.keys`: numbers (n,), positions (n, 3) Å, coeffs (naux,) and
        spin_coeffs (naux,) float64, energy (Hartree), charge, spin (2S), nelectron, fit_electrons,
        minao_cycles, converged, scf_seconds, nao, naux, the item's identity strings and the ECP as JSON.

    Raises
    ------
    NotConvergedError
        When the SCF does not converge.
    """
    from scfguess.density.auxbasis import make_auxmol
    from scfguess.density.electrons import electron_count
    from scfguess.density.fitting import fit_density
    from scfguess.scf import make_scf
    from scfguess.structures import from_atoms, to_mole
    from workflows.data.worklist import build_atoms

    t0 = time.perf_counter()
    atoms = build_atoms(item)
    structure = from_atoms(atoms, item["structure_id"], charge=int(item.get("charge", 0)),
                           spin=int(item.get("spin", 0)))
    mol = to_mole(structure, settings.basis, max_memory=settings.max_memory)
    mf = make_scf(mol, settings.xc, settings.scf_settings())
    # Without a stored DF tensor PySCF runs direct RI-J, recomputing the three-centre integrals every cycle; the
    # tensor of a <= 20-atom molecule takes < 0.1 GB (timing: python -m workflows.data.label_timing).
    if build_df_tensor:
        mf.with_df.build()
    energy = mf.kernel(dm0=mf.get_init_guess(mol, settings.init_guess))
    if not mf.converged:
        raise NotConvergedError(f"SCF did not converge in {mf.cycles} cycles (energy {energy:.8f}).")
    dm = np.asarray(mf.make_rdm1())
    coeffs = fit_density(mol, dm, auxbasis=settings.auxbasis)
    auxmol = make_auxmol(mol, settings.auxbasis)
    spin_coeffs = (fit_density(mol, dm[0] - dm[1], auxbasis=settings.auxbasis) if dm.ndim == 3
                   else np.zeros_like(coeffs))
    return {
        K.NUMBERS_KEY: atoms.numbers.astype(np.int64),
        K.POSITIONS_KEY: np.asarray(atoms.positions, dtype=np.float64),
        K.COEFFS_KEY: np.asarray(coeffs, dtype=np.float64),
        K.SPIN_COEFFS_KEY: np.asarray(spin_coeffs, dtype=np.float64),
        K.ENERGY_KEY: float(energy),
        K.CHARGE_KEY: structure.charge,
        K.SPIN_KEY: structure.spin,
        K.NELECTRON_KEY: int(mol.nelectron),
        K.FIT_ELECTRONS_KEY: float(electron_count(auxmol, coeffs)),
        K.MINAO_CYCLES_KEY: int(mf.cycles),
        K.CONVERGED_KEY: True,
        K.SCF_SECONDS_KEY: time.perf_counter() - t0,
        K.NAO_KEY: int(mol.nao),
        K.NAUX_KEY: int(auxmol.nao),
        K.STRUCTURE_ID_KEY: item["structure_id"],
        K.MOLECULE_ID_KEY: item["molecule_id"],
        K.SOURCE_KEY: item["source"],
        K.SMILES_KEY: item.get("smiles", ""),
        K.SPLIT_KEY: item["split"],
        K.ECP_KEY: json.dumps(mol.ecp if isinstance(mol.ecp, dict) else {}, sort_keys=True),
    }


# --- the store -----------------------------------------------------------------------------

def shard_attributes(settings: LabelSettings) -> dict:
    """File attributes of a shard labelled with ``settings`` (:func:`scfguess.data.shard_attributes`)."""
    from scfguess.data import shard_attributes as attributes

    return attributes(asdict(settings), settings.basis, settings.auxbasis, settings.xc)


class Store:
    """Pending results, sealed shards, manifest and failure log under one data folder.

    Parameters
    ----------
    root : Path
        Data folder (``data/``); holds ``pending/``, ``shards/``, ``manifest.json`` and
        ``failures.jsonl``.
    settings : LabelSettings
        Settings recorded in new shards; a mismatch with existing shards raises ValueError.
    """

    def __init__(self, root: Path, settings: LabelSettings):
        self.root = Path(root)
        self.settings = settings
        self.pending_dir = self.root / "pending"
        self.shard_dir = self.root / "shards"
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        ignore = self.pending_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        self._lock = open(self.pending_dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another label run holds {self.pending_dir}/.lock") from None
        self.sealed = self._sealed_ids()
        for path in self.pending_dir.glob("*.npz"):  # sealed but not yet removed before a crash
            if path.stem in self.sealed:
                path.unlink()
        for path in self.pending_dir.glob("*.tmp*"):
            path.unlink()

    def shards(self) -> list[Path]:
        """Sealed shards in name order."""
        return sorted(self.shard_dir.glob("shard-*.h5"))

    def _sealed_ids(self) -> set[str]:
        import h5py

        ids = set()
        want = json.loads(shard_attributes(self.settings)["settings"])
        for path in self.shards():
            with h5py.File(path, "r") as f:
                if json.loads(f.attrs["settings"]) != want:
                    raise ValueError(f"{path} was labelled with other settings; use another data folder.")
                ids.update(s.decode() if isinstance(s, bytes) else s for s in f[K.STRUCTURE_ID_KEY][()])
        return ids

    def pending_ids(self) -> list[str]:
        return sorted(p.stem for p in self.pending_dir.glob("*.npz"))

    def failed_ids(self) -> set[str]:
        path = self.root / "failures.jsonl"
        if not path.exists():
            return set()
        with open(path) as fh:
            return {json.loads(line)["structure_id"] for line in fh if line.strip()}

    def add(self, record: dict, order: int) -> None:
        """Store one result crash-safely (temporary file, fsync, rename)."""
        sid = record[K.STRUCTURE_ID_KEY]
        tmp = self.pending_dir / f"{sid}.npz.tmp"
        arrays = {k: np.asarray(v) for k, v in record.items()}
        arrays["order"] = np.asarray(order)
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.pending_dir / f"{sid}.npz")

    def fail(self, item: dict, error: str) -> None:
        """Append a failure to ``failures.jsonl``."""
        line = {"structure_id": item["structure_id"], "source": item["source"], "smiles": item.get("smiles", ""),
                "error": error, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(self.root / "failures.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _load_pending(self) -> list[tuple[int, dict]]:
        out = []
        for path in self.pending_dir.glob("*.npz"):
            with np.load(path) as d:
                rec = {k: (d[k].item() if d[k].ndim == 0 else d[k]) for k in d.files}
            out.append((int(rec.pop("order")), rec))
        return sorted(out, key=lambda x: x[0])

    def seal(self, shard_size: int, force: bool = False) -> list[Path]:
        """Seal pending results into new shards of ``shard_size`` (the rest too when ``force``).

        Returns
        -------
        list of Path
            The new shards (the manifest is rebuilt when there are any).
        """
        pending = self._load_pending()
        new = []
        while len(pending) >= shard_size or (force and pending):
            chunk, pending = pending[:shard_size], pending[shard_size:]
            path = self._next_shard_path()
            write_shard(path, [rec for _, rec in chunk], shard_attributes(self.settings))
            for _, rec in chunk:
                self.sealed.add(rec[K.STRUCTURE_ID_KEY])
                (self.pending_dir / f"{rec[K.STRUCTURE_ID_KEY]}.npz").unlink()
            new.append(path)
        if new:
            write_manifest(self.root)
        return new

    def _next_shard_path(self) -> Path:
        from scfguess.data.shards import shard_number

        existing = [shard_number(p) for p in self.shards()]
        return self.shard_dir / f"shard-{(max(existing) + 1) if existing else 0:05d}.h5"


def write_manifest(root: Path) -> dict:
    """Rebuild ``<root>/manifest.json`` from the shards: files, sha256, counts and split.

    Returns
    -------
    dict
        The manifest.
    """
    import h5py
    from ase.data import chemical_symbols

    from scfguess.data.shards import read_strings

    root = Path(root)
    shards, sources, elements, splits = [], Counter(), Counter(), Counter()
    smiles, parents, settings = set(), set(), None
    for path in sorted((root / "shards").glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            n = int(f.attrs["n_structures"])
            settings = json.loads(f.attrs["settings"])
            numbers = f[K.NUMBERS_KEY][()]
            off = f[K.ATOM_OFFSETS_KEY][()]
            src = read_strings(f[K.SOURCE_KEY])
            spl = read_strings(f[K.SPLIT_KEY])
            sids = read_strings(f[K.STRUCTURE_ID_KEY])
            smi = read_strings(f[K.SMILES_KEY])
            mids = read_strings(f[K.MOLECULE_ID_KEY])
        sources.update(src)
        splits.update(spl)
        for i in range(n):
            elements.update({chemical_symbols[z] for z in np.unique(numbers[off[i]:off[i + 1]])})
        smiles.update(s or sid for s, sid in zip(smi, sids))
        parents.update(mids)
        shards.append({"file": f"shards/{path.name}", "structures": n, "bytes": path.stat().st_size,
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    failures = root / "failures.jsonl"
    manifest = {
        "schema_version": K.SCHEMA_VERSION,
        "settings": settings,
        "structures": sum(s["structures"] for s in shards),
        "distinct_molecules": len(smiles),
        "parent_molecules": len(parents),
        "by_source": dict(sorted(sources.items())),
        "structures_with_element": dict(sorted(elements.items())),
        "by_split": dict(sorted(splits.items())),
        "failures": sum(1 for _ in open(failures)) if failures.exists() else 0,
        "bytes": sum(s["bytes"] for s in shards),
        "shards": shards,
    }
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(root / "manifest.json")
    return manifest


# --- the run -------------------------------------------------------------------------------

class _Shutdown(BaseException):
    """Raised by the SIGTERM/SIGINT handler to leave the run loop (not caught by job wrappers)."""


def run(worklist: Path, root: Path = DEFAULT_DATA, *, settings: LabelSettings = LabelSettings(),
        shard_size: int = 100, workers: int = 1, scheduler: str | None = None, limit: int | None = None,
        retry_failed: bool = False) -> dict:
    """Label the work list, resuming where an earlier run stopped.

    Parameters
    ----------
    worklist : Path
        JSON-lines work list (:func:`workflows.data.worklist.write_work_list`).
    root : Path
        Data folder.
    settings : LabelSettings
        SCF and fitting settings.
    shard_size : int
        Structures per sealed shard.
    workers, scheduler
        Passed to :func:`scfbench.parallel.run_jobs`.
    limit : int, optional
        Label at most this many structures in this run.
    retry_failed : bool
        Try structures of the failure log again.

    Returns
    -------
    dict
        ``{"labelled": int, "failed": int, "shards": [names of new shards]}``.
    """
    from scfbench.parallel import run_jobs
    from workflows.data.worklist import read_work_list

    store = Store(root, settings)
    items = read_work_list(worklist)
    skip = store.sealed | set(store.pending_ids()) | (set() if retry_failed else store.failed_ids())
    order = {it["structure_id"]: k for k, it in enumerate(items)}
    todo = [it for it in items if it["structure_id"] not in skip]
    if limit is not None:
        todo = todo[:limit]
    _log(f"{len(items)} in work list, {len(store.sealed)} sealed, {len(store.pending_ids())} pending, "
         f"{len(todo)} to label; settings {asdict(settings)}")
    flags = {"seal": False, "critical": False, "stop": None}

    def on_term(signum, frame):
        name = signal.Signals(signum).name
        if flags["critical"]:  # never interrupt a write; stop right after it
            flags["stop"] = name
        else:
            raise _Shutdown(name)

    def on_usr1(signum, frame):
        flags["seal"] = True

    old = {s: signal.signal(s, on_term) for s in (signal.SIGTERM, signal.SIGINT)}
    old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, on_usr1)
    labelled = failed = 0
    new_shards: list[Path] = []
    fn = functools.partial(label_structure, settings=settings)
    try:
        for item, result, error in run_jobs(fn, todo, workers=workers, scheduler=scheduler, desc="label"):
            flags["critical"] = True
            if error is None:
                store.add(result, order[item["structure_id"]])
                labelled += 1
                _log(f"done {item['structure_id']} {item['source']} atoms={len(result[K.NUMBERS_KEY])} "
                     f"cycles={result[K.MINAO_CYCLES_KEY]} s={result[K.SCF_SECONDS_KEY]:.1f}")
            else:
                store.fail(item, error)
                failed += 1
                _log(f"FAILED {item['structure_id']}: {error}")
            sealed = store.seal(shard_size, force=flags["seal"])
            flags["seal"] = False
            for path in sealed:
                _log(f"sealed {path}")
            new_shards += sealed
            flags["critical"] = False
            if flags["stop"]:
                raise _Shutdown(flags["stop"])
    except _Shutdown as exc:
        _log(f"received {exc}; sealing pending results")
    finally:
        flags["critical"] = True
        sealed = store.seal(shard_size, force=True)
        for s, handler in old.items():
            signal.signal(s, handler)
        new_shards += sealed
        for path in sealed:
            _log(f"sealed {path}")
    return {"labelled": labelled, "failed": failed, "shards": [p.name for p in new_shards]}


def _log(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Command line of the label run (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Label work-list structures with PBE/def2-SVP densities.")
    parser.add_argument("--worklist", type=Path, default=Path("data/worklist.jsonl"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder (pending/, shards/)")
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of a running Dask scheduler")
    parser.add_argument("--limit", type=int, default=None, help="label at most this many structures")
    parser.add_argument("--retry-failed", action="store_true")
    parser.add_argument("--grids-level", type=int, default=LabelSettings.grids_level)
    parser.add_argument("--conv-tol", type=float, default=LabelSettings.conv_tol)
    parser.add_argument("--seal", action="store_true", help="only seal what is pending and exit")
    args = parser.parse_args(argv)
    settings = LabelSettings(grids_level=args.grids_level, conv_tol=args.conv_tol)
    if args.seal:
        shards = Store(args.data, settings).seal(args.shard_size, force=True)
        print(json.dumps({"shards": [p.name for p in shards]}))
        return 0
    print(json.dumps(run(args.worklist, args.data, settings=settings, shard_size=args.shard_size,
                         workers=args.workers, scheduler=args.scheduler, limit=args.limit,
                         retry_failed=args.retry_failed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
