"""Benchmark jobs: explicit SCF settings, one (molecule, basis, functional, guess) job, and running it.

:func:`run_job` runs in a worker process and never raises: an SCF that fails becomes a record with
``status="failed"`` and the error text, so the run goes on. Every SCF setting is set on the PySCF objects
explicitly and stored with the record; nothing comes from a PySCF configuration file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from scfbench.guesses import ConvergedReference, GuessSpec, guess_quality, make_guess, parse_guess
from scfguess.scf import ScfSettings, make_scf
from scfguess.structures import Structure, to_mole

__all__ = ["SCHEMA_VERSION", "Job", "run_job", "plan_jobs", "versions"]

#: Version of the record layout; stores from another version are refused.
SCHEMA_VERSION = 1


def resolved_auxbasis(mol, xc: str, settings: ScfSettings) -> str | None:
    """Name of the SCF auxiliary basis PySCF uses (``"etb"`` for even-tempered); None without density fitting."""
    if not settings.density_fit:
        return None
    if settings.auxbasis is not None:
        return settings.auxbasis
    from pyscf.df.addons import make_auxbasis

    names = {v if isinstance(v, str) else "etb" for v in make_auxbasis(mol, xc=xc).values()}
    return ",".join(sorted(names))


def versions() -> dict:
    """Versions of Python, NumPy, PySCF, torch and scfguess, the machine's core count and this process's threads."""
    import importlib.metadata

    import numpy
    import pyscf

    out = {"python": platform.python_version(), "numpy": numpy.__version__, "pyscf": pyscf.__version__}
    try:
        out["scfguess"] = importlib.metadata.version("scfguess")
    except importlib.metadata.PackageNotFoundError:
        out["scfguess"] = None
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        out["torch"] = None
    from pyscf import lib

    out["cores"] = os.cpu_count()
    out["threads"] = lib.num_threads()
    out["host"] = platform.node()
    return out


@dataclass(frozen=True)
class Job:
    """One (molecule, basis, functional, guess) benchmark job.

    Attributes
    ----------
    structure : Structure
        The molecule (positions in Å).
    basis, xc : str
        Orbital basis and functional.
    guess : GuessSpec
        Validated guess.
    settings : ScfSettings
        SCF settings.
    model_sha256 : str or None
        sha256 of the model for ``ml`` guesses.
    reference_dir : str or None
        Folder of converged ``minao`` density matrices: a ``minao`` job stores its converged result there and an
        ``oracle`` job of the same molecule and settings starts from it instead of converging it again. Not part
        of the key (it changes where work is done, not the result).
    stability : bool
        Run PySCF's internal stability analysis on a converged open shell, after the timing (``stable`` in the
        record; None when off). It can cost several times the SCF itself. Not part of the key (an analysis of
        the result, not the result).
    """

    structure: Structure
    basis: str
    xc: str
    guess: GuessSpec
    settings: ScfSettings = field(default_factory=ScfSettings)
    model_sha256: str | None = None
    reference_dir: str | None = None
    stability: bool = True

    @property
    def key(self) -> str:
        """sha256 over molecule id and geometry, basis, functional, guess label, every setting and model sha256."""
        payload = {
            "schema": SCHEMA_VERSION,
            "molecule": self.structure.id,
            "geometry": self.structure.geometry_hash(),
            "basis": self.basis.lower(),
            "xc": self.xc.lower(),
            "guess": self.guess.label,
            "settings": self.settings.as_dict(),
            "model_sha256": self.model_sha256,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _reference_path(job: Job) -> Path | None:
    """Cache file of the converged ``minao`` run that ``job``'s molecule, basis, functional and settings share."""
    if job.reference_dir is None:
        return None
    minao_key = replace(job, guess=parse_guess("minao"), model_sha256=None).key
    return Path(job.reference_dir) / f"{minao_key}.npz"


def _store_reference(job: Job, mf) -> None:
    path = _reference_path(job)
    if path is None or not mf.converged:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, dm=np.asarray(mf.make_rdm1()), cycles=int(mf.cycles), converged=True)
    os.replace(tmp, path)  # atomic: a reader sees the whole file or none


def _load_reference(job: Job) -> ConvergedReference | None:
    path = _reference_path(job)
    if path is None or not path.exists():
        return None
    with np.load(path) as f:
        return ConvergedReference(f["dm"], int(f["cycles"]), bool(f["converged"]))


def _base_record(job: Job) -> dict:
    s = job.structure
    return {
        "key": job.key,
        "schema_version": SCHEMA_VERSION,
        "molecule": s.id,
        "formula": s.formula,
        "natoms": s.natoms,
        "charge": s.charge,
        "spin": s.spin,
        "source": s.source,
        "geometry_sha256": s.geometry_hash(),
        "basis": job.basis,
        "xc": job.xc,
        "guess": job.guess.label,
        "guess_kind": job.guess.kind,
        "model_sha256": job.model_sha256,
        "settings": job.settings.as_dict(),
        "versions": versions(),
        "status": "failed",
        "error": None,
        "cycles": None,
        "converged": False,
        "energy": None,
        "s2": None,
        "stable": None,
        "guess_seconds": None,
        "inference_seconds": None,
        "conversion_seconds": None,
        "scf_seconds": None,
        "guess_fock_builds": None,
        "guess_k_builds": None,
        "fock_builds": None,
        "guess_energy": None,
        "guess_energy_error": None,
        "guess_gradient_norm": None,
    }


def run_job(job: Job) -> dict:
    """Run one job and return its record (a JSON-ready dict); never raises.

    The record holds the molecule (id, formula, atoms, charge, spin), basis, functional, guess label, settings,
    versions and core count, ``cycles`` (``mf.cycles``), ``converged``, ``energy`` (Hartree), timings in seconds
    (``guess_seconds``; ``inference_seconds`` and ``conversion_seconds`` for ml/oracle; ``scf_seconds`` for
    ``mf.kernel`` alone), Fock builds (``guess_fock_builds`` hidden in the guess, ``fock_builds`` = cycles +
    hidden), the guess's own energy, its error against the converged energy and its orbital-gradient norm,
    ``s2`` (⟨S²⟩ of the final UKS determinant for open shells, else None), ``stable`` (open shells: whether the
    converged state passed PySCF's internal stability analysis, run after the timing; None for closed shells and
    when ``job.stability`` is off), ``status`` ("ok" or "failed" with ``error``), and when it ran: ``started`` and
    ``finished`` (UTC, ISO 8601), and ``cpu_seconds``, the CPU time of all its threads (well below
    ``total_seconds`` × threads: another process competed for its cores while it was timed).
    """
    from scfbench.parallel import format_error

    record = _base_record(job)
    record["started"] = _now()
    t_start, cpu_start = time.perf_counter(), time.process_time()
    try:
        _run(job, record)
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a failing SCF is a result
        record["error"] = format_error(exc)
    record["total_seconds"] = time.perf_counter() - t_start
    record["cpu_seconds"] = time.process_time() - cpu_start
    record["finished"] = _now()
    return record


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run(job: Job, record: dict) -> None:
    settings = job.settings
    mol = to_mole(job.structure, job.basis, max_memory=settings.max_memory)
    record["nao"] = int(mol.nao)
    record["nelectron"] = int(mol.nelectron)
    record["settings"]["auxbasis_resolved"] = resolved_auxbasis(mol, job.xc, settings)

    def build(xc=None, density_fit=None):
        # Same molecule and settings; pbe-first asks for density fitting whatever the target run uses.
        s = settings
        if density_fit is not None and density_fit != settings.density_fit:
            s = ScfSettings(**{**settings.as_dict(), "density_fit": density_fit, "auxbasis": None})
        return make_scf(mol, job.xc if xc is None else xc, s)

    mf = build()
    model = None
    if job.guess.kind == "ml":
        from scfguess.model.registry import load_model

        model = load_model(job.guess.model)
        if job.model_sha256 is not None and model.sha256 != job.model_sha256:
            raise ValueError(f"model {job.guess.label!r} changed since the run was planned (sha256 differs).")
    reference = None
    if job.guess.kind == "oracle":
        reference = _load_reference(job)
        record["reference_cached"] = reference is not None
    guess = make_guess(job.guess, mf, build, model=model, reference=reference)
    record.update({
        "guess_seconds": guess.seconds,
        "inference_seconds": guess.inference_seconds,
        "conversion_seconds": guess.conversion_seconds,
        "guess_fock_builds": guess.fock_builds,
        "guess_k_builds": guess.k_builds,
    })
    if guess.extra:
        record.update(guess.extra)
    mf_run = mf
    if settings.gpu:
        mf_run = mf.to_gpu()
    t0 = time.perf_counter()
    mf_run.kernel(dm0=guess.dm)
    record["scf_seconds"] = time.perf_counter() - t0
    record["cycles"] = int(mf_run.cycles)
    record["converged"] = bool(mf_run.converged)
    record["energy"] = float(mf_run.e_tot)
    if mol.spin:
        record["s2"] = float(mf_run.spin_square()[0])
        if mf_run.converged and job.stability and not settings.gpu:  # which of two converged states is a minimum
            record["stable"] = bool(mf_run.stability(return_status=True)[2])
    if job.guess.kind == "minao" and not settings.gpu:
        _store_reference(job, mf_run)
    record["fock_builds"] = int(mf_run.cycles) + guess.fock_builds
    e_guess, grad = guess_quality(mf, guess.dm)
    record["guess_energy"] = e_guess
    record["guess_energy_error"] = e_guess - record["energy"] if mf_run.converged else None
    record["guess_gradient_norm"] = grad


def plan_jobs(structures, bases, xcs, guesses: list[GuessSpec], settings: ScfSettings,
              model_sha256: dict[str, str] | None = None, reference_dir: str | None = None,
              stability: bool = True) -> list[Job]:
    """All jobs of a run, molecule by molecule (so a molecule's guesses finish close together), ``oracle`` last.

    The ``oracle`` jobs come after all others so that, with ``reference_dir``, the ``minao`` runs they start from
    are usually cached by then.

    Parameters
    ----------
    structures : list of Structure
    bases, xcs : list of str
    guesses : list of GuessSpec
    settings : ScfSettings
    model_sha256 : dict, optional
        Guess label -> model sha256 for ``ml`` guesses.
    reference_dir : str, optional
        See :class:`Job`.
    stability : bool
        See :class:`Job`.
    """
    model_sha256 = model_sha256 or {}
    jobs = [Job(s, b, x, g, settings, model_sha256.get(g.label), reference_dir, stability)
            for s in structures for b in bases for x in xcs for g in guesses]
    return sorted(jobs, key=lambda job: job.guess.kind == "oracle")

