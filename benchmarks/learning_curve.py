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

With ``--pretrain N`` (issue 15: learning across people) it simulates ``2 N`` subjects with one
seed (the planted mixing and HRFs shared, each subject's activity and noise its own) and runs
two folds across participants: SAMBA trained on the longest training blocks of one half (the
group model, early stopping on their validation blocks) is fine-tuned on each participant of
the other half at the shortest training length (``fit_samba(..., init=group)``, what
``--init-from group`` does), and scored beside SAMBA and the ridge from scratch at every
length, the group model applied as it is, the oracle and the perfect translator. A summary
gives the mean over participants and the paired differences with their SEM.

    python benchmarks/learning_curve.py --pretrain 3 --duration 1200 --test-volumes 100 \
        --validation-volumes 40 --train-volumes 187 400 --seed 170
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
from evaluate_simulation import oracle_prediction  # noqa: E402

from samba_bids.alignment import Split  # noqa: E402
from samba_bids.config import Config  # noqa: E402
from samba_bids.metrics import pearson_r  # noqa: E402
from samba_bids.model.baselines import fit_ridge_baseline  # noqa: E402
from samba_bids.training import concatenate_runs, fit_samba, predict_run  # noqa: E402

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
                        help="training lengths, volumes (the longest possible is added, "
                             "but with --pretrain)")
    parser.add_argument("--samba", action="store_true",
                        help="also fit SAMBA at every length (minutes per fit on a CPU)")
    parser.add_argument("--pretrain", type=int, default=0, metavar="N",
                        help="simulate 2N subjects and fine-tune SAMBA pretrained on one half "
                             "for each subject of the other (implies --samba)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.pretrain:
        return pretraining_curve(args)

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


class _Subject:
    """One simulated participant's inputs, truth and blocks for the curve."""

    def __init__(self, args, config, subject):
        self.label = subject
        self.inputs, self.truth, self.config = simulated_inputs(
            args.out_dir, args.templates_dir, duration_s=args.duration,
            n_channels=args.channels, seed=args.seed, config=config,
            hemodynamics=args.hemodynamics, n_subjects=2 * args.pretrain, subject=subject)
        observed = self.inputs.observed
        n_volumes, self.gap = observed.shape[1], self.inputs.split.history
        self.test = np.arange(n_volumes - args.test_volumes, n_volumes)
        self.validation = np.arange(self.test[0] - self.gap - args.validation_volumes,
                                    self.test[0] - self.gap)
        self.longest = int(self.validation[0] - self.gap)

    def blocks(self, n_train, config):
        """(split, BOLD standardised on the training block) for ``n_train`` training volumes
        ending one gap before the validation block."""
        observed = self.inputs.observed
        train = np.arange(self.validation[0] - self.gap - n_train, self.validation[0] - self.gap)
        split = Split(train=train, validation=self.validation, test=self.test,
                      history=self.gap, window_trs=config.window_trs, tr_s=self.inputs.tr_s)
        mean = observed[:, train].mean(axis=1, keepdims=True)
        std = observed[:, train].std(axis=1, keepdims=True)
        return split, (observed - mean) / std


def _samba_r(fit, subject, features, bold, test):
    predicted = predict_run(fit.model, features, history=subject.gap, window_trs=fit.window_trs)
    return median_r(predicted, bold, test)


def pretraining_curve(args) -> int:
    """``--pretrain N``: two folds across participants (see the module docstring)."""
    start = time.perf_counter()
    config = Config(max_epochs=args.max_epochs, seed=args.seed, device="cpu", confounds="none")
    subjects = [_Subject(args, config, f"{i:02d}") for i in range(1, 2 * args.pretrain + 1)]
    config = dataclasses.replace(subjects[0].config, window_trs=15)
    first = subjects[0]
    lengths = sorted({min(n, first.longest) for n in args.train_volumes})  # as asked
    shortest = lengths[0]
    print(f"seed {args.seed}: {len(subjects)} subjects of {first.inputs.observed.shape[1]} "
          f"volumes (TR {first.inputs.tr_s:g} s); test block {len(first.test)}, validation "
          f"{len(first.validation)}, gaps {first.gap}; training lengths {lengths}; prepared in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    halves = [subjects[:args.pretrain], subjects[args.pretrain:]]
    for fold, (pretrain_on, targets) in enumerate([halves, halves[::-1]], start=1):
        runs = []
        for other in pretrain_on:
            split, bold = other.blocks(other.longest, config)
            runs.append((other.inputs.features, bold, split))
        features, bold, split = concatenate_runs(runs)
        tic = time.perf_counter()
        group = fit_samba(features, bold, split, first.inputs.parcels.centroids_mm,
                          first.inputs.atlas.centroids_mm, config, tr_s=split.tr_s)
        print(f"fold {fold}: group model on sub-{', sub-'.join(o.label for o in pretrain_on)} "
              f"({len(split.train)} training volumes): best epoch {group.best_epoch}, "
              f"{time.perf_counter() - tic:.0f} s", flush=True)
        for target in targets:
            features = target.inputs.features
            row = {"subject": target.label, "fold": fold}
            for n_train in lengths:
                split, bold = target.blocks(n_train, config)
                ridge = fit_ridge_baseline(features, bold, split, tr_s=target.inputs.tr_s)
                row[f"ridge_{n_train}"] = median_r(ridge.predict(features), bold, target.test)
                fit = fit_samba(features, bold, split, target.inputs.parcels.centroids_mm,
                                target.inputs.atlas.centroids_mm, config, tr_s=split.tr_s)
                row[f"samba_{n_train}"] = _samba_r(fit, target, features, bold, target.test)
                if n_train == shortest:
                    row["group"] = _samba_r(group, target, features, bold, target.test)
                    tuned = fit_samba(features, bold, split,
                                      target.inputs.parcels.centroids_mm,
                                      target.inputs.atlas.centroids_mm, config,
                                      tr_s=split.tr_s, init=group.model)
                    row[f"pretrained_{n_train}"] = _samba_r(tuned, target, features, bold,
                                                            target.test)
                    row[f"prior_ridge_{n_train}"] = median_r(
                        tuned.model.ridge.predict(features), bold, target.test)
                    row["prior_alpha"] = float(tuned.model.ridge.alpha)
                    row["pretrained_best_epoch"] = int(tuned.best_epoch)
            _, bold = target.blocks(shortest, config)
            row["oracle"] = median_r(oracle_prediction(target.inputs, target.truth), bold,
                                     target.test)
            row["perfect"] = median_r(target.truth["noiseless"], bold, target.test)
            rows.append(row)
            print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in row.items()), flush=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    print(table.to_csv(sep="\t", index=False, float_format="%.3f"))
    columns = [c for c in table.columns if c not in ("subject", "fold", "prior_alpha",
                                                     "pretrained_best_epoch")]
    print("mean over participants (SEM):")
    for column in columns:
        values = table[column].to_numpy(dtype=float)
        sem = values.std(ddof=1) / np.sqrt(len(values))
        print(f"  {column:18s} {values.mean():.3f} ({sem:.3f})")
    longest = lengths[-1] if 400 not in lengths else 400
    for a, b in ((f"pretrained_{shortest}", f"samba_{longest}"),
                 (f"pretrained_{shortest}", f"samba_{shortest}"),
                 (f"pretrained_{shortest}", f"ridge_{longest}"),
                 (f"samba_{shortest}", f"ridge_{shortest}")):
        diff = (table[a] - table[b]).to_numpy(dtype=float)
        print(f"paired {a} - {b}: {diff.mean():+.3f} (SEM "
              f"{diff.std(ddof=1) / np.sqrt(len(diff)):.3f}), below in "
              f"{int((diff < 0).sum())} of {len(diff)}")
    gap = table[f"samba_{longest}"] - table[f"samba_{shortest}"]
    closed = (table[f"pretrained_{shortest}"] - table[f"samba_{shortest}"]).sum() / gap.sum()
    print(f"gap from {shortest} to {longest} volumes (SAMBA from scratch) closed by "
          f"pretraining: {closed:.0%}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
