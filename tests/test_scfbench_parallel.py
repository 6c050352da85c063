"""scfbench.parallel.run_jobs: in-process and Dask LocalCluster, failures, and a worker killed mid-run."""

import os
import signal
from pathlib import Path

import pytest

from scfbench.parallel import format_error, run_jobs, threads_per_worker


def square_or_fail(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def die_once_then_report(job):
    """Kill the worker process the first time job 'die' runs; report thread settings otherwise."""
    name, marker = job
    if name == "die" and not Path(marker).exists():
        Path(marker).write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    from pyscf import lib

    return name, os.environ.get("OMP_NUM_THREADS"), lib.num_threads()


def test_serial_results_and_errors_in_completion_order():
    results = list(run_jobs(square_or_fail, range(5)))
    assert [job for job, _, _ in results] == [0, 1, 2, 3, 4]
    assert [r for _, r, e in results if e is None] == [0, 1, 4, 16]
    (error,) = [e for _, _, e in results if e is not None]
    assert error.startswith("ValueError: three is not allowed (test_scfbench_parallel.py:")


def test_threads_per_worker_and_bad_workers():
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(32, cores=16) == 1
    with pytest.raises(ValueError):
        list(run_jobs(square_or_fail, [1], workers=0))


def test_format_error_without_traceback():
    assert format_error(KeyError("x")) == "KeyError: 'x'"


def test_local_cluster_survives_a_killed_worker(tmp_path):
    marker = str(tmp_path / "killed")
    before = os.environ.get("OMP_NUM_THREADS")
    jobs = [("a", marker), ("die", marker), ("b", marker), ("c", marker)]
    results = list(run_jobs(die_once_then_report, jobs, workers=2, desc="test"))
    assert Path(marker).exists()  # a worker process really died
    assert sorted(job[0] for job, _, _ in results) == ["a", "b", "c", "die"]
    assert all(error is None for _, _, error in results)
    expected = str(threads_per_worker(2))
    for _, (name, omp, pyscf_threads), _ in results:
        assert omp == expected and pyscf_threads == int(expected)
    assert os.environ.get("OMP_NUM_THREADS") == before  # the parent's settings are left alone


def test_running_scheduler_by_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      dashboard_address=":0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        results = list(run_jobs(square_or_fail, [1, 2, 3], scheduler=cluster.scheduler_address, workers=5))
    assert sorted(r for _, r, e in results if e is None) == [1, 4]
    assert [e.split(" (")[0] for _, _, e in results if e is not None] == ["ValueError: three is not allowed"]
