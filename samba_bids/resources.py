"""CPU threads and memory budget of a run (``--nprocs``, ``--omp-nthreads``, ``--mem-mb``).

fMRIPrep's meaning: ``nprocs`` is what the whole run may use (here: torch's intra-op threads,
parallel filtering), ``omp_nthreads`` what one numerical call may use (BLAS/OpenMP of numpy,
scipy and MNE). On a cluster both come from the scheduler (``$SLURM_CPUS_PER_TASK``), so that
an array of single-participant jobs does not oversubscribe shared nodes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os

logger = logging.getLogger(__name__)

#: Environment variables that size the BLAS/OpenMP pools of libraries loaded later and of
#: child processes (joblib workers of MNE's filtering, for example).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
#: OpenMP settings the entry points give the process before torch loads its OpenMP runtime
#: (unless already set): sleep at once when a parallel region ends instead of spinning, so
#: that jobs sharing cores do not spin against each other (issue 17; measured in
#: ``benchmarks/bench_concurrency.py``).
OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
#: glibc ``mallopt`` parameters set by :func:`tune_malloc` (``M_TRIM_THRESHOLD`` 256 MB,
#: ``M_MMAP_THRESHOLD`` 64 MB): the tensors of a training step (a few MB each) come from the
#: heap and their memory is kept for the next step instead of being returned to the system
#: and faulted in again; arrays over 64 MB (recordings) are still mapped and returned whole.
#: The environment's ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_`` do the same.
MALLOC_OPTIONS = {"M_TRIM_THRESHOLD": (-1, 256 * 1024 * 1024),
                  "M_MMAP_THRESHOLD": (-3, 64 * 1024 * 1024)}
#: Largest recording the memory estimate plans for: channels (306 MEG + 64 EEG + misc) and
#: source parcels (Schaefer 1000 is the finest published scale).
PLANNED_CHANNELS = 400
PLANNED_PARCELS = 1000
#: Fraction of ``mem_mb`` one electrophysiology chunk may take (the rest: the recording, the
#: inverse operator, BOLD, the model).
CHUNK_MEMORY_FRACTION = 0.125
#: float64 copies of a chunk alive at once (sensor data, parcel output, a temporary).
CHUNK_COPIES = 3


def chunk_seconds_for_budget(mem_mb: int, sfreq_hz: float, chunk_s: float) -> float:
    """Longest electrophysiology chunk (s, at most ``chunk_s``) that fits a memory budget.

    A chunk of ``t`` seconds holds about ``CHUNK_COPIES * (PLANNED_CHANNELS +
    PLANNED_PARCELS) * sfreq_hz * t`` float64 values; it may use
    ``CHUNK_MEMORY_FRACTION * mem_mb``.

    Parameters
    ----------
    mem_mb : int
        Memory budget of the run, in MB.
    sfreq_hz : float
        Sampling rate of the streamed data (after resampling), in Hz.
    chunk_s : float
        Configured chunk length, in s (never increased).

    Returns
    -------
    float
        Chunk length in s, at least 1 s.
    """
    bytes_per_s = CHUNK_COPIES * (PLANNED_CHANNELS + PLANNED_PARCELS) * sfreq_hz * 8
    fits = CHUNK_MEMORY_FRACTION * mem_mb * 1e6 / bytes_per_s
    return float(max(1.0, min(chunk_s, fits)))


def budget_config(config):
    """``config`` with ``chunk_s`` lowered to fit ``config.mem_mb`` (a copy; logged).

    Parameters
    ----------
    config : samba_bids.config.Config
        Resolved configuration.

    Returns
    -------
    samba_bids.config.Config
        The same object when there is no budget or the chunks already fit, else a copy.
    """
    if not config.mem_mb:
        return config
    chunk_s = chunk_seconds_for_budget(config.mem_mb, config.resample_sfreq_hz, config.chunk_s)
    logger.info(
        "Memory budget %d MB: electrophysiology streamed in chunks of %.1f s (up to %d "
        "channels and %d parcels at %g Hz take %.0f MB per chunk).", config.mem_mb, chunk_s,
        PLANNED_CHANNELS, PLANNED_PARCELS, config.resample_sfreq_hz,
        CHUNK_COPIES * (PLANNED_CHANNELS + PLANNED_PARCELS) * config.resample_sfreq_hz * 8
        * chunk_s / 1e6,
    )
    if chunk_s >= config.chunk_s:
        return config
    return dataclasses.replace(config, chunk_s=chunk_s)


def available_cpus(*, affinity=None, cgroup_root="/sys/fs/cgroup") -> tuple[int, str]:
    """CPUs this process may use, and why: its CPU affinity, capped by a cgroup CPU quota.

    SLURM's ``--cpus-per-task`` and ``taskset`` set the affinity; ``docker --cpus`` sets a
    CFS quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``),
    rounded up here. ``os.cpu_count()`` counts the machine's cores, which other jobs share.

    Parameters
    ----------
    affinity : set of int, optional
        Default ``os.sched_getaffinity(0)`` (``os.cpu_count()`` where it does not exist).
    cgroup_root : path-like
        Where the cgroup file system is mounted.

    Returns
    -------
    n_cpus : int
        At least 1.
    reason : str
        For the log, e.g. ``"CPU affinity: 4 of 64 cores"``.
    """
    import math
    from pathlib import Path

    total = os.cpu_count() or 1
    if affinity is None:
        affinity = (os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity")
                    else range(total))
    n_cpus = max(1, len(affinity))
    reason = f"CPU affinity: {n_cpus} of {total} cores"
    root = Path(cgroup_root)
    quota = None
    try:
        fields = (root / "cpu.max").read_text().split()
        if fields and fields[0] != "max":
            quota = float(fields[0]) / float(fields[1])
    except (OSError, ValueError, IndexError):
        try:
            value = float((root / "cpu" / "cpu.cfs_quota_us").read_text())
            period = float((root / "cpu" / "cpu.cfs_period_us").read_text())
            quota = value / period if value > 0 else None
        except (OSError, ValueError, ZeroDivisionError):
            quota = None
    if quota is not None and math.ceil(quota) < n_cpus:
        n_cpus = max(1, math.ceil(quota))
        reason += f", cgroup CPU quota {quota:g} CPUs"
    return n_cpus, reason


def apply_process_environment(environ=None) -> dict:
    """Set :data:`OPENMP_ENV` where the environment does not already choose, and glibc's
    allocator (:func:`tune_malloc`): what the entry points do first, before torch loads.

    Returns
    -------
    dict
        The variables set (name -> value); the user's own settings are left alone.
    """
    environ = os.environ if environ is None else environ
    applied = {}
    for name, value in OPENMP_ENV.items():
        if name not in environ:
            environ[name] = value
            applied[name] = value
    return applied


def tune_malloc() -> bool:
    """Apply :data:`MALLOC_OPTIONS` with glibc's ``mallopt`` (through ctypes).

    Unless ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_MMAP_MAX_``
    are in the environment (the user's choice). Returns whether it was applied (False off
    glibc).
    """
    import ctypes
    import ctypes.util

    if any(name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                                           "MALLOC_MMAP_MAX_")):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(code, value) == 1 for code, value in MALLOC_OPTIONS.values())


@contextlib.contextmanager
def thread_limits(nprocs: int | None, omp_nthreads: int | None):
    """Limit threads for the duration of a run, and restore them after.

    Parameters
    ----------
    nprocs : int | None
        torch intra-op threads (:func:`torch.set_num_threads`); inter-op threads are set to
        the same where torch still allows it (only before its first parallel work). None:
        the CPUs this process may use (:func:`available_cpus`).
    omp_nthreads : int | None
        Threads per BLAS/OpenMP call: :func:`threadpoolctl.threadpool_limits` on the loaded
        BLAS libraries, and :data:`THREAD_ENV` for libraries loaded later and child
        processes. None: ``nprocs``. Capped at ``nprocs``.

    Yields
    ------
    dict
        ``{"nprocs": ..., "omp_nthreads": ...}`` as applied (None: unchanged).
    """
    from threadpoolctl import threadpool_limits

    reason = "--nprocs"
    if nprocs is None:
        nprocs, reason = available_cpus()
    if omp_nthreads is None:
        omp_nthreads = nprocs
    if nprocs and omp_nthreads and omp_nthreads > nprocs:
        logger.warning("--omp-nthreads %d is more than --nprocs %d; using %d.", omp_nthreads,
                       nprocs, nprocs)
        omp_nthreads = nprocs
    saved_env = {name: os.environ.get(name) for name in THREAD_ENV}
    torch_threads = None
    with contextlib.ExitStack() as stack:
        if omp_nthreads:
            for name in THREAD_ENV:
                os.environ[name] = str(omp_nthreads)
            stack.enter_context(threadpool_limits(limits=omp_nthreads, user_api="blas"))
        if nprocs:
            import torch

            torch_threads = torch.get_num_threads()
            torch.set_num_threads(nprocs)
            with contextlib.suppress(RuntimeError):  # allowed once, before parallel work
                torch.set_num_interop_threads(nprocs)
        logger.info("Threads: %s torch, %s per BLAS/OpenMP call (%s; OpenMP wait policy %s).",
                    nprocs, omp_nthreads, reason, os.environ.get("OMP_WAIT_POLICY", "default"))
        try:
            yield {"nprocs": nprocs, "omp_nthreads": omp_nthreads}
        finally:
            if torch_threads is not None:
                import torch

                torch.set_num_threads(torch_threads)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
