"""experiments.compare on a real Dask cluster: a ``LocalCluster`` of worker
processes, started and stopped here, gives the table of a local run.

The sweep reaches the cluster through joblib's Dask backend, as the
documentation's recipe does (``joblib.parallel_config(backend="dask")``).
"""
import logging

import numpy as np
import pytest

from pyx_gru import experiments, tasks

pytest.importorskip("joblib", reason="joblib (optional extra 'experiments') is not installed")
pytest.importorskip("threadpoolctl", reason="threadpoolctl (optional extra 'experiments') is not installed")
distributed = pytest.importorskip(
    "distributed", reason="dask.distributed (optional extra 'cluster') is not installed")

SETTINGS = dict(cells=["rnn", "gru", "lstm"], n_params=300, lrs=[3e-3, 1e-2], seeds=[0, 1],
                epochs=2, batch_size=16, weight_noise=0.05)


def _without_times(result):
    rows = [{k: v for k, v in r.items() if k != "time"} for r in result.rows]
    hist = [{k: v for k, v in h.to_dict().items() if k != "time"} for h in result.histories]
    return rows, hist


@pytest.fixture(scope="module")
def task():
    return tasks.adding(120, 8, seed=0)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread each; closed after the module."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        yield cluster


def test_a_sweep_on_a_local_dask_cluster_equals_the_local_run(task, cluster, capsys):
    import joblib

    local = experiments.compare(task, n_jobs=1, **SETTINGS)
    with distributed.Client(cluster) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        with joblib.parallel_config(backend="dask"):
            remote = experiments.compare(task, n_jobs=-1, verbose=1, **SETTINGS)
        # the jobs ran in the workers' processes, not in this one
        pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids
    assert _without_times(remote) == _without_times(local)
    assert {r["blas_threads"] for r in remote.rows} == {1}
    assert all(np.isfinite(r["test_loss"]) for r in remote.rows)
    # progress: one line per finished run while the sweep runs
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    n_runs = len(local.rows)
    assert len(lines) == n_runs
    assert sorted(int(line[1:].split("/")[0]) for line in lines) == list(range(1, n_runs + 1))
