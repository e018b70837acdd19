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


@contextlib.contextmanager
def thread_limits(nprocs: int | None, omp_nthreads: int | None):
    """Limit threads for the duration of a run, and restore them after.

    Parameters
    ----------
    nprocs : int | None
        torch intra-op threads (:func:`torch.set_num_threads`); inter-op threads are set to
        the same where torch still allows it (only before its first parallel work).
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
        if nprocs or omp_nthreads:
            logger.info("Threads: %s torch, %s per BLAS/OpenMP call.", nprocs or "default",
                        omp_nthreads or "default")
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
