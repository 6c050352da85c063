"""Run independent jobs in parallel and yield their results as they complete.

One function serves SCFbench and the labelling workflows: ``run_jobs(fn, jobs)`` runs ``fn(job)`` for every
job, in this process (``workers=1``), on a Dask ``LocalCluster`` of worker processes (``workers=N``), or on a
running Dask distributed cluster (``scheduler="tcp://HOST:PORT"``), and yields ``(job, result, error)`` tuples
in completion order so that a single writer in the calling process can store each result as soon as it exists.

Example
-------
>>> for job, result, error in run_jobs(math.sqrt, [1.0, 4.0], workers=1):
...     print(job, result, error)
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["run_jobs", "threads_per_worker", "format_error"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Number of OpenMP/BLAS/torch threads each of ``workers`` processes gets on ``cores`` cores.

    Parameters
    ----------
    workers : int
        Number of worker processes (>= 1).
    cores : int, optional
        Cores available; defaults to the cores this process may use.

    Returns
    -------
    int
        ``max(1, cores // workers)``.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


def format_error(exc: BaseException) -> str:
    """One-line description of an exception plus the innermost traceback frame.

    Parameters
    ----------
    exc : BaseException
        The exception raised by a job.

    Returns
    -------
    str
        ``"TypeName: message (file.py:line in function)"``.
    """
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if frames:
        last = frames[-1]
        text += f" ({os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    return text


def _set_threads(threads: int | None) -> None:
    """Limit OpenMP, BLAS, PySCF and torch threads of the current process to ``threads`` (None: leave as is)."""
    if threads is None:
        return
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    try:
        from pyscf import lib

        lib.num_threads(threads)
    except ImportError:  # pragma: no cover - pyscf is a dependency
        pass
    try:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _call(fn: Callable[[Any], Any], job: Any, threads: int | None) -> tuple[Any, str | None]:
    """Worker-side wrapper: set the thread count, run ``fn(job)`` and return ``(result, error)``."""
    _set_threads(threads)
    try:
        return fn(job), None
    except Exception as exc:  # noqa: BLE001 - a failing job is a result, not the end of the run
        return None, format_error(exc)


def _progress(total: int, desc: str | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc or "jobs", unit="job", dynamic_ncols=True, smoothing=0.1)


def _run_serial(fn, jobs, bar) -> Iterator[tuple[Any, Any, str | None]]:
    failures = 0
    for job in jobs:
        result, error = _call(fn, job, None)
        failures += error is not None
        bar.update(1)
        bar.set_postfix(failed=failures, refresh=False)
        yield job, result, error


def _run_dask(fn, jobs, client, threads, bar) -> Iterator[tuple[Any, Any, str | None]]:
    from distributed import as_completed

    futures = {client.submit(_call, fn, job, threads, pure=False): job for job in jobs}
    failures = 0
    for future in as_completed(list(futures)):
        job = futures.pop(future)
        try:
            result, error = future.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker after repeated worker deaths, lost scheduler
            result, error = None, format_error(exc)
        failures += error is not None
        future.release()
        bar.update(1)
        bar.set_postfix(failed=failures, refresh=False)
        yield job, result, error


def run_jobs(
    fn: Callable[[Any], Any],
    jobs: Iterable[Any],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    desc: str | None = None,
) -> Iterator[tuple[Any, Any, str | None]]:
    """Run ``fn(job)`` for every job and yield ``(job, result, error)`` as each job completes.

    Parameters
    ----------
    fn : callable
        Function of one argument. For ``workers > 1`` or a scheduler it and the jobs must be picklable
        (a module-level function and plain data).
    jobs : iterable
        The jobs; materialised into a list first to size the progress bar.
    workers : int, default 1
        1 runs the jobs one after another in this process. N > 1 starts a Dask ``LocalCluster`` of N worker
        processes with one task at a time each and ``cores // N`` OpenMP/BLAS/torch threads per process.
    scheduler : str, optional
        Address of a running Dask distributed scheduler (``"tcp://HOST:PORT"``); overrides ``workers``.
        Thread counts are then left as the cluster's workers are configured.
    desc : str, optional
        Label of the progress bar (tqdm, on stderr: done/total, failures, rate and ETA).

    Yields
    ------
    job : object
        The job as given.
    result : object or None
        ``fn(job)``, or None when the job raised.
    error : str or None
        None on success, otherwise ``"TypeName: message (file:line in function)"``. A job whose worker
        process died repeatedly is reported with Dask's ``KilledWorker`` error; the run goes on.

    Notes
    -----
    Results arrive in completion order, not job order. Closing the generator early (``break``) cancels
    the remaining jobs and shuts the local cluster down.
    """
    jobs = list(jobs)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    bar = _progress(len(jobs), desc)
    try:
        if not jobs:
            return
        if scheduler is None and workers == 1:
            yield from _run_serial(fn, jobs, bar)
            return
        from distributed import Client

        if scheduler is not None:
            with Client(scheduler) as client:
                yield from _run_dask(fn, jobs, client, None, bar)
            return
        with _local_cluster(workers) as cluster, Client(cluster) as client:
            yield from _run_dask(fn, jobs, client, threads_per_worker(workers), bar)
    finally:
        bar.close()


class _local_cluster:
    """Context manager for a quiet Dask ``LocalCluster`` whose worker processes start with limited threads."""

    def __init__(self, workers: int):
        self.workers = workers

    def __enter__(self):
        import logging

        import dask
        from distributed import LocalCluster

        threads = str(threads_per_worker(self.workers))
        env = {name: threads for name in _THREAD_VARIABLES}
        # Pre-spawn variables are set before a worker interpreter loads BLAS/OpenMP. Dask writes them into this
        # process's environment too, at start and at every worker restart, so they are restored on exit.
        self.saved = {name: os.environ.get(name) for name in (*_THREAD_VARIABLES, "PYTHONHASHSEED")}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env, "distributed.worker.daemon": True}):
            try:
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # the HTTP server always starts; a free port avoids clashes
                    memory_limit=0,
                    silence_logs=logging.ERROR,
                    env=env,
                )
            except BaseException:
                self._restore()
                raise
        return self.cluster

    def _restore(self):
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __exit__(self, *exc):
        try:
            self.cluster.close()
        finally:
            self._restore()
        return False
