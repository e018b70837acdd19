"""How the translation score grows with training data, and how noisy one test block is.

Simulates one long subject (default 40 min of 64-channel EEG, TR 2 s, otherwise the default
simulation) and keeps one test block at the end of the run (default 150 volumes) and a
validation block before it (60 volumes), with the split's HRF gaps between the blocks. The
canonical-HRF band-power ridge baseline (and, with ``--samba``, SAMBA) is fitted on training
blocks of growing length that end one gap before the validation block (the penalty, or the
early stop, chosen on the validation block) and scored on the test block. It prints, per
training length:

* the median over BOLD parcels of the test Pearson r on the whole test block;
* the same on consecutive 41-volume pieces of the test block (the length of the default
  simulation's test block), lowest and highest: how far one short test block moves a score;
* what a perfect translator (the noiseless BOLD) scores on the whole block and on the pieces.

This is the evidence behind the README's reading of issue 3's evaluation: with 187 training
volumes (the default 10-minute run) every model is limited by the data, and a single 41-volume
test block decides a comparison only when the difference is large.

    python benchmarks/learning_curve.py --templates-dir ../shared/data/templates
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _simulated import add_arguments, simulated_inputs  # noqa: E402

from samba_bids.alignment import Split  # noqa: E402
from samba_bids.config import Config  # noqa: E402
from samba_bids.metrics import pearson_r  # noqa: E402
from samba_bids.model.baselines import fit_ridge_baseline  # noqa: E402
from samba_bids.training import fit_samba, predict_run  # noqa: E402

#: Length of the default simulation's test block, volumes.
PIECE = 41


def median_r(predicted, observed, volumes) -> float:
    """Median over parcels of the Pearson r on ``volumes``."""
    return float(np.nanmedian(pearson_r(predicted[:, volumes], observed[:, volumes])))


def piece_range(predicted, observed, test) -> tuple[float, float]:
    """Lowest and highest median r over consecutive :data:`PIECE`-volume pieces of ``test``."""
    scores = [median_r(predicted, observed, test[i:i + PIECE])
              for i in range(0, len(test) - PIECE + 1, PIECE)]
    return min(scores), max(scores)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(duration=2400.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-volumes", type=int, default=150)
    parser.add_argument("--validation-volumes", type=int, default=60)
    parser.add_argument("--train-volumes", type=int, nargs="+", default=[187, 400, 800],
                        help="training lengths, volumes (the longest possible is added)")
    parser.add_argument("--samba", action="store_true",
                        help="also fit SAMBA at every length (minutes per fit on a CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    start = time.perf_counter()
    config = Config(max_epochs=args.max_epochs, seed=args.seed, device="cpu", confounds="none")
    inputs, truth, config = simulated_inputs(args.out_dir, args.templates_dir,
                                             duration_s=args.duration,
                                             n_channels=args.channels, seed=args.seed,
                                             config=config, hemodynamics=args.hemodynamics)
    features, observed = inputs.features, inputs.observed
    n_volumes, gap, tr_s = observed.shape[1], inputs.split.history, inputs.tr_s
    test = np.arange(n_volumes - args.test_volumes, n_volumes)
    validation = np.arange(test[0] - gap - args.validation_volumes, test[0] - gap)
    longest = int(validation[0] - gap)
    lengths = sorted({n for n in args.train_volumes if n < longest} | {longest})
    print(f"seed {args.seed}: {n_volumes} volumes (TR {tr_s:g} s), test block "
          f"{len(test)}, validation block {len(validation)}, gaps {gap}; prepared in "
          f"{time.perf_counter() - start:.0f} s")
    low, high = piece_range(truth["noiseless"], observed, test)
    perfect = median_r(truth["noiseless"], observed, test)
    print(f"perfect translator (noiseless BOLD): {perfect:.3f} on the test block; "
          f"{PIECE}-volume pieces {low:.3f}-{high:.3f}")
    print("model  train_volumes  median_r_test_block  pieces_min  pieces_max  detail")
    for n_train in lengths:
        train = np.arange(validation[0] - gap - n_train, validation[0] - gap)
        split = Split(train=train, validation=validation, test=test, history=gap,
                      window_trs=config.window_trs, tr_s=tr_s)
        # the BOLD standardised on this training block (as the pipeline does)
        mean = observed[:, train].mean(axis=1, keepdims=True)
        std = observed[:, train].std(axis=1, keepdims=True)
        bold = (observed - mean) / std
        fits = [("ridge", lambda: fit_ridge_baseline(features, bold, split, tr_s=tr_s))]
        if args.samba:
            fits.append(("samba", lambda: fit_samba(
                features, bold, split, inputs.parcels.centroids_mm, inputs.atlas.centroids_mm,
                dataclasses.replace(config, window_trs=15), tr_s=tr_s)))
        for name, fit_model in fits:
            fit = fit_model()
            if name == "ridge":
                predicted, detail = fit.predict(features), f"alpha {fit.alpha:g}"
            else:
                predicted = predict_run(fit.model, features, history=gap,
                                        window_trs=fit.window_trs)
                detail = f"best epoch {fit.best_epoch}"
            low, high = piece_range(predicted, bold, test)
            print(f"{name:5s}  {n_train:13d}  {median_r(predicted, bold, test):19.3f}  "
                  f"{low:10.3f}  {high:10.3f}  {detail}", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
