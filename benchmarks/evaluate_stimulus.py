"""Issue 16's evaluation: MEG and fMRI of different people watching the same film.

Simulates a stimulus-locked dataset (``samba-bids-simulate --stimulus-locked``; default 8 MEG
and 8 fMRI participants, a film of 4 segments of 5 minutes), prepares it as the group level does
(``--pairing stimulus``; both kept in ``--out-dir`` and reused: ``<name>.simulated`` marks a
finished simulation, ``<name>-prepared.pkl`` holds the prepared segments), then, for
each way of pooling the MEG participants' features (``average``, ``participants``),
cross-validates SAMBA and the ridge by held-out segment and prints, per segment and as means:

* the paper's metric (Spearman rho pooled over parcels and time) on the whole segment and on
  30-s and 60-s windows, and the median per-parcel Pearson r, against the observed group BOLD
  (the mean of the fMRI participants);
* the same for the oracle (the planted stimulus-driven BOLD of ``derivatives/truth`` as the
  prediction) and the ceiling from the inter-subject correlation;
* the median r of each prediction with the planted stimulus-driven BOLD itself;
* the decoding of the segment, and of the window of the film (between-subject time-segment
  classification), from 30-s windows (SAMBA's latent drive, band power, the ridge's
  prediction, the observed BOLD) with the chance level and permutation p-value;

beside the paper's reported ranges (a different dataset: studyforrest, 500 BOLD parcels).
Each mode's cross-validation result is pickled to ``<name>-<mode>-result.pkl``.

    python benchmarks/evaluate_stimulus.py --templates-dir ../shared/data/templates --seed 180
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from samba_bids.config import Config
from samba_bids.metrics import pearson_r, pooled_spearman, windowed_pooled_spearman
from samba_bids.simulate import simulate_stimulus_locked_dataset
from samba_bids.templates import find_templates_dir
from samba_bids.workflows.stimulus import (
    SPEARMAN_WINDOWS_S,
    cross_validate_segments,
    prepare_design,
)

#: What the SAMBA paper reports (SAMBA_NOTES.md; studyforrest MEG -> fMRI, other data).
PAPER = ("paper (studyforrest, other people's MEG -> fMRI, 500 parcels): pooled Spearman "
         "0.63-0.67 for 30-second and 0.38-0.67 for minute-long predictions; EEG-to-fMRI film "
         "classification +10.54 % accuracy over baselines")


def _scores(predicted, observed, tr_s) -> dict:
    volumes = np.arange(observed.shape[1])
    row = {"median_r": float(np.nanmedian(pearson_r(predicted, observed))),
           "spearman": pooled_spearman(predicted, observed, volumes)}
    for seconds in SPEARMAN_WINDOWS_S:
        row[f"spearman_{seconds:g}s"] = windowed_pooled_spearman(
            predicted, observed, volumes, int(round(seconds / tr_s)))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/samba-bids-stimulus"))
    parser.add_argument("--templates-dir", type=Path, default=None)
    parser.add_argument("--ephys-subjects", type=int, default=8)
    parser.add_argument("--bold-subjects", type=int, default=8)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--duration", type=float, default=300.0, help="segment length, s")
    parser.add_argument("--modality", choices=("meg", "eeg"), default="meg")
    parser.add_argument("--channels", type=int, default=None)
    parser.add_argument("--seed", type=int, default=180)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--features", nargs="+", default=["average", "participants"],
                        choices=("average", "participants"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    templates_dir = find_templates_dir(args.templates_dir)
    name = (f"stim-{args.ephys_subjects}x{args.bold_subjects}-{args.segments}x"
            f"{args.duration:g}s-{args.modality}-seed{args.seed}")
    bids = args.out_dir / name
    done = args.out_dir / f"{name}.simulated"  # written once the whole dataset is
    if not done.exists():
        simulate_stimulus_locked_dataset(
            bids, templates_dir, n_ephys_subjects=args.ephys_subjects,
            n_bold_subjects=args.bold_subjects, n_segments=args.segments,
            segment_duration_s=args.duration, modality=args.modality,
            n_channels=args.channels, seed=args.seed)
        done.write_text("complete\n")
    config = Config(bids_dir=bids, output_dir=args.out_dir / f"{name}-out",
                    templates_dir=templates_dir, work_dir=args.out_dir / "work",
                    analysis_level="group", pairing="stimulus", confounds="none",
                    max_epochs=args.max_epochs, seed=args.seed, device="cpu")
    prepared_file = args.out_dir / f"{name}-prepared.pkl"  # reused by later runs
    if prepared_file.exists():
        with open(prepared_file, "rb") as handle:
            design, segments = pickle.load(handle)
    else:
        design, segments = prepare_design(config)
        with open(prepared_file, "wb") as handle:
            pickle.dump((design, segments), handle)
    tr_s = segments[0].tr_s
    print(f"{name}: {len(segments)} segments of {segments[0].n_volumes} volumes (TR {tr_s:g} "
          f"s), {len(design.ephys_subjects)} MEG/EEG and {len(design.bold_subjects)} fMRI "
          f"participants; prepared in {time.perf_counter() - start:.0f} s", flush=True)
    truth = {}
    for prepared in segments:
        table = pd.read_csv(bids / "derivatives" / "truth" / f"task-film_run-"
                            f"{prepared.segment.run}_desc-stimulus_timeseries.tsv", sep="\t")
        truth[prepared.segment.run] = table[[str(n) for n in prepared.atlas.names]].to_numpy().T
    rows = []
    for prepared in segments:
        planted = truth[prepared.segment.run][:, :prepared.n_volumes]
        rows.append({"features": "-", "model": "oracle", "segment": prepared.segment.run,
                     **_scores(planted, prepared.target, tr_s), "r_with_truth": 1.0})
    for mode in args.features:
        tic = time.perf_counter()
        result = cross_validate_segments(design, segments,
                                         dataclasses.replace(config, stimulus_features=mode))
        for prepared, prediction, summary in zip(segments, result.predictions,
                                                 result.summaries.to_dict("records")):
            planted = truth[prepared.segment.run][:, :prepared.n_volumes]
            for model, predicted in (("samba", prediction.samba), ("ridge", prediction.ridge)):
                rows.append({"features": mode, "model": model,
                             "segment": prepared.segment.run,
                             **_scores(predicted, prepared.target, tr_s),
                             "r_with_truth": float(np.nanmedian(pearson_r(predicted,
                                                                          planted))),
                             "median_isc": summary["median_isc"],
                             "median_ceiling_r": summary["median_ceiling_r"]})
        print(f"features {mode}: cross-validated in {time.perf_counter() - tic:.0f} s")
        print(pd.DataFrame([r for r in rows if r["features"] == mode]).to_csv(
            sep="\t", index=False, float_format="%.3f"), flush=True)
        if result.decoding is not None:
            print(f"decoding ({mode}):")
            print(result.decoding[["feature_set", "target", "accuracy", "ci_low", "ci_high",
                                   "chance", "null_mean_accuracy", "p_value", "n_windows",
                                   "n_classes"]]
                  .to_string(index=False, float_format="%.3f"), flush=True)
        with open(args.out_dir / f"{name}-{mode}-result.pkl", "wb") as handle:
            pickle.dump(result, handle)  # predictions, drives and decoding, for later looks
    table = pd.DataFrame(rows)
    print(table.to_csv(sep="\t", index=False, float_format="%.3f"))
    means = table.groupby(["features", "model"], sort=False).mean(numeric_only=True)
    print("means over held-out segments:")
    print(means.drop(columns="segment", errors="ignore").to_string(float_format="%.3f"))
    for mode in args.features:
        samba = table[(table.features == mode) & (table.model == "samba")]
        ridge = table[(table.features == mode) & (table.model == "ridge")]
        for column in ("median_r", "spearman_30s", "spearman_60s"):
            diff = samba[column].to_numpy() - ridge[column].to_numpy()
            print(f"{mode}: SAMBA - ridge, {column}: {diff.mean():+.3f} (SEM "
                  f"{diff.std(ddof=1) / np.sqrt(len(diff)):.3f}), below in "
                  f"{int((diff < 0).sum())} of {len(diff)} segments")
    print(PAPER)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
