"""Training and inference speed of SAMBA on one participant of the default simulated dataset.

Prints, on CPU and (when present) on CUDA with the GPU's name:

* seconds per epoch (median over epochs) and to convergence (to the best validation epoch,
  and to the early stop), with the epochs;
* inference speed: seconds of recording translated per second of compute (:func:`predict_run`
  over the whole run);
* the ratio against the naive way, measured in the same run: one optimisation step over a
  batch of windows done as one batched forward/backward pass, against the same step looping
  over the windows one at a time (the public SAMBA code's loop over the batch), same
  gradients.

    python benchmarks/bench_training.py --templates-dir ../shared/data/templates
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _simulated import add_arguments, simulated_inputs  # noqa: E402

from samba_bids.config import Config  # noqa: E402
from samba_bids.model.losses import pearson_loss  # noqa: E402
from samba_bids.training import _batch, fit_samba, make_windows, predict_run  # noqa: E402


def _step_seconds(model, x_all, y_all, windows, history, *, batched, repeats=3):
    """Best-of-``repeats`` seconds of one forward + backward over ``windows``; the gradient."""
    best, grad = np.inf, None
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        if batched:
            x, mask, y = _batch(x_all, y_all, windows, history)
            pearson_loss(model(x, mask=mask)[..., history:], y).backward()
        else:
            for window in windows:  # one window at a time, gradients accumulated
                x, mask, y = _batch(x_all, y_all, window[None], history)
                (pearson_loss(model(x, mask=mask)[..., history:], y) / len(windows)).backward()
        if x_all.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
        grad = torch.cat([p.grad.ravel() for p in model.parameters() if p.grad is not None])
    return best, grad


def bench_device(inputs, config, device):
    """Fit, predict and time the batched vs looped step on one device; print the figures."""
    config = dataclasses.replace(config, device=device)
    split = inputs.split
    fit = fit_samba(inputs.features, inputs.observed, split, inputs.parcels.centroids_mm,
                    inputs.atlas.centroids_mm, config, tr_s=inputs.tr_s)
    hist = fit.history
    cumulative = hist["seconds"].cumsum().to_numpy()
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"[{device}: {name}] {fit.n_parameters} parameters; "
          f"{hist['seconds'].median():.2f} s per epoch (median of {len(hist)}); best epoch "
          f"{fit.best_epoch} after {cumulative[fit.best_epoch - 1]:.1f} s; early stop after "
          f"{cumulative[-1]:.1f} s")

    n_volumes = inputs.features.shape[1]
    predict_run(fit.model, inputs.features, history=split.history, window_trs=fit.window_trs,
                device=device)  # warm-up
    start = time.perf_counter()
    predict_run(fit.model, inputs.features, history=split.history, window_trs=fit.window_trs,
                device=device)
    seconds = time.perf_counter() - start
    recording_s = n_volumes * inputs.tr_s
    print(f"[{device}] inference: {recording_s:.0f} s of recording in {seconds:.3f} s "
          f"({recording_s / seconds:,.0f} s of recording per second)")

    model = fit.model.to(device).train()
    x_all = torch.as_tensor(inputs.features, dtype=torch.float32, device=device)
    y_all = torch.as_tensor(inputs.observed, dtype=torch.float32, device=device)
    windows = make_windows(split.train, split.history, fit.window_trs)[: config.batch_size]
    torch.manual_seed(0)
    model.eval()  # dropout off: both ways must give the same gradient
    batched_s, g_batched = _step_seconds(model, x_all, y_all, windows, split.history,
                                         batched=True)
    looped_s, g_looped = _step_seconds(model, x_all, y_all, windows, split.history,
                                       batched=False)
    # pearson_loss averages over windows, so the mean of per-window losses equals the batch's
    diff = float((g_batched - g_looped).abs().max() / g_batched.abs().max())
    print(f"[{device}] one step over {len(windows)} windows: batched {batched_s * 1e3:.1f} ms vs "
          f"one window at a time {looped_s * 1e3:.1f} ms ({looped_s / batched_s:.1f}x); "
          f"max relative gradient difference {diff:.1e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = Config(max_epochs=args.max_epochs)
    inputs, _, config = simulated_inputs(args.out_dir, args.templates_dir,
                                         duration_s=args.duration, n_channels=args.channels,
                                         config=config, hemodynamics=args.hemodynamics)
    print(f"one participant: {inputs.features.shape[0]} source -> {inputs.observed.shape[0]} "
          f"BOLD parcels, {inputs.observed.shape[1]} volumes (TR {inputs.tr_s:g} s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    bench_device(inputs, config, "cpu")
    if torch.cuda.is_available():
        bench_device(inputs, config, "cuda")
    else:
        print("[cuda] no GPU on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
