"""Resources on clusters: --nprocs, --omp-nthreads, --mem-mb and --overwrite."""

from __future__ import annotations

import os

import pytest

from samba_bids import workflows
from samba_bids.cli.parser import parse_args
from samba_bids.cli.run import build_config
from samba_bids.config import Config
from samba_bids.errors import UsageError
from samba_bids.resources import THREAD_ENV, chunk_seconds_for_budget


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {info["internal_api"]: info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas"}


@pytest.mark.parametrize("spelling", [("--omp-nthreads", "--mem-mb"),
                                      ("--omp_nthreads", "--mem_mb"),
                                      ("--omp-nthreads", "--mem")])
def test_parser_accepts_resource_options(tmp_path, spelling):
    omp, mem = spelling
    args = parse_args([str(tmp_path), str(tmp_path / "o"), "participant", "--nprocs", "4",
                       omp, "2", mem, "8000", "--overwrite"])
    config = build_config(args)
    assert (config.nprocs, config.omp_nthreads, config.mem_mb, config.overwrite) == (
        4, 2, 8000, True)
    config = build_config(parse_args([str(tmp_path), str(tmp_path / "o"), "participant"]))
    assert (config.omp_nthreads, config.mem_mb, config.overwrite) == (None, None, False)


def test_digest_ignores_resources():
    base = Config(bids_dir="/a", output_dir="/b", seed=1)
    other = Config(bids_dir="/a", output_dir="/b", seed=1, nprocs=8, omp_nthreads=4,
                   mem_mb=2000, overwrite=True, chunk_s=12.5)
    assert base.digest() == other.digest() != Config(seed=2).digest()
    for bad in ({"omp_nthreads": 0}, {"mem_mb": -1}, {"nprocs": 1.5}):
        with pytest.raises(UsageError, match="positive integer"):
            Config(**bad)


def test_chunk_fits_the_budget():
    assert chunk_seconds_for_budget(64000, 100.0, 60.0) == 60.0  # plenty: unchanged
    small = chunk_seconds_for_budget(256, 100.0, 60.0)
    assert 1.0 < small < 60.0
    # the chunk's estimated size is what the budget allows
    assert 3 * 1400 * 100.0 * 8 * small == pytest.approx(0.125 * 256e6)
    assert chunk_seconds_for_budget(1, 1000.0, 60.0) == 1.0  # never below 1 s


def test_run_applies_thread_limits(tmp_path, monkeypatch):
    import torch

    before_torch = torch.get_num_threads()
    before_blas = _blas_threads()
    before_env = {k: os.environ.get(k) for k in THREAD_ENV}
    seen = {}

    def fake_participant_level(config):
        seen["torch"] = torch.get_num_threads()
        seen["blas"] = _blas_threads()
        seen["env"] = {k: os.environ.get(k) for k in THREAD_ENV}
        seen["chunk_s"] = config.chunk_s
        return workflows.Results(output_dir=config.output_dir)

    monkeypatch.setattr(workflows, "run_participant_level", fake_participant_level)
    (tmp_path / "ds").mkdir()
    config = Config(bids_dir=tmp_path / "ds", output_dir=tmp_path / "out", nprocs=1,
                    omp_nthreads=1, mem_mb=256)
    workflows.run(config)
    assert seen["torch"] == 1
    assert seen["blas"] and set(seen["blas"].values()) == {1}
    assert set(seen["env"].values()) == {"1"}
    assert seen["chunk_s"] == pytest.approx(chunk_seconds_for_budget(256, 100.0, 60.0))
    assert config.chunk_s == 60.0  # the caller's config is not changed
    # everything is restored after the run
    assert torch.get_num_threads() == before_torch
    assert _blas_threads() == before_blas
    assert {k: os.environ.get(k) for k in THREAD_ENV} == before_env

    # --omp-nthreads defaults to --nprocs and is capped by it
    workflows.run(Config(bids_dir=tmp_path / "ds", output_dir=tmp_path / "out", nprocs=1))
    assert seen["torch"] == 1 and set(seen["blas"].values()) == {1}
    workflows.run(Config(bids_dir=tmp_path / "ds", output_dir=tmp_path / "out", nprocs=1,
                         omp_nthreads=4))
    assert set(seen["env"].values()) == {"1"}
    # no budget: the configured chunk length
    workflows.run(Config(bids_dir=tmp_path / "ds", output_dir=tmp_path / "out"))
    assert seen["chunk_s"] == 60.0


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux CPU affinity and two cores")
def test_threads_follow_the_cpu_affinity_of_the_process():
    """A child process pinned to one core (as SLURM's --cpus-per-task or taskset pin a job)
    runs with one torch thread and one BLAS thread when --nprocs is not given; pinned to
    every core, with as many threads as cores it may use (issue 17)."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "cores = sorted(os.sched_getaffinity(0))\n"
        "os.sched_setaffinity(0, cores[:int(sys.argv[1])])\n"
        "import torch\n"
        "from samba_bids.resources import available_cpus, thread_limits\n"
        "with thread_limits(None, None) as applied:\n"
        "    print(available_cpus()[0], torch.get_num_threads(), applied['omp_nthreads'],"
        " os.environ['OMP_NUM_THREADS'])\n")
    every = len(os.sched_getaffinity(0))
    for pinned in (1, every):
        out = subprocess.run([sys.executable, "-c", script, str(pinned)], check=True,
                             capture_output=True, text=True).stdout.split()
        expected = min(pinned, every)
        assert out == [str(expected)] * 4, (pinned, out)


def test_cgroup_cpu_quota_caps_the_threads(tmp_path):
    """``docker --cpus 1.5`` (cgroup v2 cpu.max, or v1 cfs quota) gives 2 threads on a
    4-core affinity; no quota leaves the affinity."""
    from samba_bids.resources import available_cpus

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert available_cpus(affinity={0, 1, 2, 3}, cgroup_root=v2)[0] == 2
    assert "quota 1.5" in available_cpus(affinity={0, 1, 2, 3}, cgroup_root=v2)[1]
    (v2 / "cpu.max").write_text("max 100000\n")
    assert available_cpus(affinity={0, 1, 2, 3}, cgroup_root=v2)[0] == 4
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(affinity={0, 1, 2, 3}, cgroup_root=v1.parent)[0] == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert available_cpus(affinity={0, 1}, cgroup_root=v1.parent)[0] == 2
    assert available_cpus(affinity={0, 1}, cgroup_root=tmp_path / "none")[0] == 2


def test_entry_point_sets_the_openmp_wait_policy_unless_the_user_did(tmp_path):
    """The console command sets OMP_WAIT_POLICY=PASSIVE before torch loads; a user's own
    value is kept (issue 17)."""
    import subprocess
    import sys

    from samba_bids.resources import OPENMP_ENV, apply_process_environment

    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert apply_process_environment(environ) == {} and environ["OMP_WAIT_POLICY"] == "ACTIVE"
    environ = {}
    assert apply_process_environment(environ) == OPENMP_ENV == environ
    script = ("import os, sys\nsys.argv = ['samba-bids', '--version']\n"
              "from samba_bids.cli import run\nrun.entry()\n"
              "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[-2:] == ["PASSIVE", "False"]  # set, and torch not loaded before it
