"""Training throughput when several participants' trainings share the same cores (issue 17).

Each worker process times SAMBA training steps of the default model (100 source -> 200 BOLD
parcels, hidden 32, batch 8 windows of 16 + 15 TRs, AdamW; synthetic features: the step's
cost does not depend on the values) and prints the median seconds per step of 10 steps after
3 warm-up steps. The driver starts 1, 2 and 4 workers at once, under each setting:

* ``default``: what a torch process does by itself (threads: torch's default; OpenMP's
  default wait policy; glibc's default allocator);
* ``chosen``: what samba-bids now does (threads: the CPUs the process may use,
  :func:`samba_bids.resources.available_cpus`, divided among nothing: each job sized alone,
  as a SLURM array task is; :data:`~samba_bids.resources.OPENMP_ENV`;
  :func:`~samba_bids.resources.tune_malloc`);
* optional others (``--settings``): ``passive`` (the wait policy alone), ``spin10k`` and
  ``spin100k`` (libgomp's ``GOMP_SPINCOUNT``: spin that many iterations, then sleep; the
  default spins 300,000 and ``OMP_WAIT_POLICY=ACTIVE`` forever), ``malloc`` (the allocator
  alone), ``one-thread`` (1 thread per process).

It prints per setting and number of processes: the median step time of each process, the
slowdown against one process alone under the same setting and against ``default`` alone, and
the total throughput (steps per second, all processes). All in one run, side by side: run it
on an otherwise idle machine.

    python benchmarks/bench_concurrency.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

#: Settings: environment additions and worker flags.
SETTINGS = {
    "default": ({}, []),
    "chosen": (None, ["--tune-malloc"]),  # None: samba_bids.resources.OPENMP_ENV
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "spin10k": ({"GOMP_SPINCOUNT": "10000"}, []),  # libgomp (torch's CPU wheels) spins less
    "spin100k": ({"GOMP_SPINCOUNT": "100000"}, []),
    "malloc": ({}, ["--tune-malloc"]),
    "spin10k-malloc": ({"GOMP_SPINCOUNT": "10000"}, ["--tune-malloc"]),
    "spin1k-malloc": ({"GOMP_SPINCOUNT": "1000"}, ["--tune-malloc"]),
    "one-thread": ({"OMP_NUM_THREADS": "1"}, ["--threads", "1"]),
}


def worker(args) -> None:
    """Time training steps; print ``{"step_s": median, "threads": n}`` as JSON."""
    if args.tune_malloc:
        from samba_bids.resources import tune_malloc

        tune_malloc()
    import torch

    from samba_bids.model.graph import build_graphs
    from samba_bids.model.losses import pearson_loss
    from samba_bids.model.samba import SAMBA
    from samba_bids.model.wavelet import FEATURE_NAMES
    from samba_bids.training import _batch, make_windows

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n_src, n_bold, n_bands, history, window, n_volumes = 100, 200, 4, 16, 15, 300
    features = rng.normal(size=(n_src, n_volumes, n_bands, len(FEATURE_NAMES)))
    bold = rng.normal(size=(n_bold, n_volumes))
    bipartite, bold_edges = build_graphs(rng.normal(size=(n_src, 3)) * 50,
                                         rng.normal(size=(n_bold, 3)) * 50,
                                         features[..., 0].mean(axis=2), bold, 4, 4, tr_s=2.0)
    model = SAMBA(n_src, n_bold, n_bands, len(FEATURE_NAMES), bipartite, bold_edges, tr_s=2.0,
                  history=history, hidden_size=args.hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x_all = torch.as_tensor(features, dtype=torch.float32)
    y_all = torch.as_tensor(bold, dtype=torch.float32)
    windows = make_windows(np.arange(n_volumes), history, window)
    times = []
    for step in range(13):
        chosen = windows[rng.choice(len(windows), 8, replace=False)]
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        x, mask, y = _batch(x_all, y_all, chosen, history)
        pearson_loss(model(x, mask=mask)[..., history:], y).backward()
        optimizer.step()
        if step >= 3:
            times.append(time.perf_counter() - start)
    print(json.dumps({"step_s": float(np.median(times)), "threads": torch.get_num_threads()}))


def run_setting(name, n_processes, hidden) -> list[dict]:
    """``n_processes`` workers started together under setting ``name``; their results."""
    from samba_bids.resources import OPENMP_ENV, available_cpus

    extra_env, flags = SETTINGS[name]
    env = dict(os.environ)
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_"):
        env.pop(key, None)
    env.update(OPENMP_ENV if extra_env is None else extra_env)
    if name == "chosen":
        flags = [*flags, "--threads", str(available_cpus()[0])]
    command = [sys.executable, __file__, "--worker", "--hidden", str(hidden), *flags]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
                 for _ in range(n_processes)]
    results = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode:
            raise RuntimeError(f"worker failed ({process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tune-malloc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, default=32, help="SAMBA hidden size")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--settings", nargs="+", default=["default", "chosen"],
                        choices=tuple(SETTINGS))
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from samba_bids.resources import available_cpus

    cpus, reason = available_cpus()
    print(f"{reason}; hidden {args.hidden}; median of 10 steps per process")
    print("setting      processes  threads  step_s (each process)        vs alone  "
          "vs default alone  steps/s total")
    alone = {}
    for name in args.settings:
        for n in args.processes:
            results = run_setting(name, n, args.hidden)
            steps = [r["step_s"] for r in results]
            if n == min(args.processes):
                alone[name] = float(np.median(steps))
            reference = alone.get("default", alone[name])
            print(f"{name:12s} {n:9d}  {results[0]['threads']:7d}  "
                  f"{' '.join(f'{s:.3f}' for s in steps):28s} "
                  f"{np.median(steps) / alone[name]:7.2f}x  {np.median(steps) / reference:15.2f}x"
                  f"  {sum(1 / s for s in steps):13.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
