"""``samba-bids-demo OUT_DIR``: simulate a small dataset with ground truth, run the participant
level on it, and print the scores against the truth.

The demo writes ``OUT_DIR/bids`` (a simulated BIDS dataset with ``derivatives/truth``) and the
samba-bids outputs in ``OUT_DIR/bids/derivatives/samba-bids``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import pandas as pd

from ..config import Config
from ..errors import SambaBidsError
from ..templates.locate import find_templates_dir

logger = logging.getLogger("samba_bids")


def build_parser() -> argparse.ArgumentParser:
    """The ``samba-bids-demo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="samba-bids-demo",
        description="Simulate EEG + BOLD with planted HRFs, run samba-bids, score it against "
                    "the truth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out_dir", type=Path, help="folder for the dataset and the outputs")
    parser.add_argument("--templates-dir", type=Path, default=None,
                        help="offline templates (default $SAMBA_TEMPLATES, then the cache, "
                             "else a fallback with sphere parcels instead of Schaefer's)")
    parser.add_argument("--duration", type=float, default=240.0, help="length of each run, s")
    parser.add_argument("--runs", type=int, default=2,
                        help="paired runs (EEG + BOLD) per participant; one model is trained "
                             "across them (cross-validated by run from 3 runs, else by blocks)")
    parser.add_argument("--ephys-only-runs", type=int, default=1,
                        help="further runs with EEG but no BOLD per participant, translated "
                             "with the participant's model and scored against the truth")
    parser.add_argument("--tr", type=float, default=2.0, help="repetition time, s")
    parser.add_argument("--channels", type=int, default=32, help="EEG channels")
    parser.add_argument("--subjects", type=int, default=2,
                        help="participants to simulate (the group level summarises them)")
    parser.add_argument("--max-epochs", type=int, default=30, help="training epochs at most")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--confounds", default="none", choices=("auto", "all", "none"),
                        help="confound strategy: the simulated confounds are random series "
                             "that are not in the BOLD, so regressing them ('auto', the "
                             "default of samba-bids) only removes signal")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def truth_scores(bids_dir: Path, output_dir: Path, label: str = "sub-01_task-rest") -> dict:
    """Scores of one participant's outputs against the simulator's ``derivatives/truth``.

    Returns
    -------
    dict
        ``median_pearson_r`` and ``ridge_median_pearson_r`` (test block),
        ``median_noise_ceiling`` (noiseless vs noisy BOLD, whole run), ``perfect_model_r``
        (the noiseless BOLD scored like the models: test block, against the BOLD as the
        pipeline cleaned it; :func:`samba_bids.evaluation.simulation_ceilings`), and the HRF
        time-to-peak recovery (:func:`samba_bids.metrics.hrf_recovery_summary`).
    """
    import json

    from ..evaluation import simulation_ceilings
    from ..metrics import hrf_recovery, hrf_recovery_summary

    subject = label.split("_")[0]
    truth = bids_dir / "derivatives" / "truth" / subject / "func"
    func = output_dir / subject / "func"
    atlas = next(func.glob(f"{label}_atlas-*_desc-samba_metrics.tsv")).name.replace(
        "_desc-samba_metrics.tsv", "")
    metrics = pd.read_csv(func / f"{atlas}_desc-samba_metrics.tsv", sep="\t")
    learned = pd.read_csv(func / f"{atlas}_desc-samba_hrf.tsv", sep="\t")
    planted = pd.read_csv(truth / f"{label}_desc-truth_hrf.tsv", sep="\t")
    ceiling = pd.read_csv(truth / f"{label}_desc-noiseceiling_metrics.tsv", sep="\t")
    recovery = hrf_recovery_summary(hrf_recovery(learned, planted))
    observed = pd.read_csv(func / f"{atlas}_desc-observed_timeseries.tsv", sep="\t")
    noiseless, noisy = (pd.read_csv(truth / f"{label}_desc-{kind}_timeseries.tsv", sep="\t")
                        [list(observed.columns)].to_numpy().T for kind in ("noiseless", "noisy"))
    test = json.loads((func / f"{atlas}_desc-samba_metrics.json").read_text())["TestVolumes"]
    bounds = simulation_ceilings(noiseless, noisy, observed.to_numpy().T, test)
    return {
        "median_pearson_r": float(metrics["pearson_r"].median()),
        "ridge_median_pearson_r": float(metrics["ridge_pearson_r"].median()),
        "median_noise_ceiling": float(ceiling["noise_ceiling_r"].median()),
        "perfect_model_r": bounds["perfect_model_block"],
        "hrf_median_abs_error_s": recovery["median_abs_error_s"],
        "hrf_rank_correlation": recovery["spearman_time_to_peak"],
    }


def eeg_only_truth_r(bids_dir: Path, output_dir: Path, label: str) -> float:
    """Median over parcels of the Pearson r between an EEG-only run's predicted BOLD and the
    noiseless BOLD the simulator planted for it (``derivatives/truth``)."""
    import numpy as np

    from ..metrics import pearson_r

    subject = label.split("_")[0]
    predicted = pd.read_csv(next((output_dir / subject / "func").glob(
        f"{label}_atlas-*_desc-samba_timeseries.tsv")), sep="\t")
    truth = pd.read_csv(bids_dir / "derivatives" / "truth" / subject / "func"
                        / f"{label}_desc-noiseless_timeseries.tsv", sep="\t")
    return float(np.median(pearson_r(predicted.to_numpy().T,
                                     truth[list(predicted.columns)].to_numpy().T)))


def main(argv=None) -> int:
    """Run the demo; return the exit code."""
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        from ..simulate import simulate_dataset
        from ..workflows import run

        templates_dir = find_templates_dir(args.templates_dir, fallback=True)
        bids_dir = args.out_dir / "bids"
        print(f"Simulating {args.subjects} participants, each {args.runs} run(s) of "
              f"{args.duration:g} s of {args.channels}-channel EEG and BOLD (TR {args.tr:g} s) "
              f"and {args.ephys_only_runs} run(s) of EEG alone, in {bids_dir} ...")
        simulate_dataset(bids_dir, templates_dir, duration_s=args.duration, tr_s=args.tr,
                         n_channels=args.channels, n_subjects=args.subjects,
                         spaces=("fsaverage5",), seed=args.seed, n_runs=args.runs,
                         n_ephys_only_runs=args.ephys_only_runs)
        output_dir = bids_dir / "derivatives" / "samba-bids"
        config = Config(bids_dir=bids_dir, output_dir=output_dir, templates_dir=templates_dir,
                        work_dir=args.out_dir / "work", volume_trigger="Volume",
                        bold_space="fsaverage5", max_epochs=args.max_epochs, seed=args.seed,
                        confounds=args.confounds)
        results = run(config)
        group = run(dataclasses.replace(config, analysis_level="group"))
    except SambaBidsError as err:
        print(f"samba-bids-demo: error: {err}", file=sys.stderr)
        return err.exit_code
    for line in results.summary_lines() + group.summary_lines()[1:]:
        print(line)
    print("Reports:")
    for report in sorted(output_dir.glob("*.html")):
        print(f"  {report}")
    print(f"Methods boilerplate: {output_dir / 'logs' / 'CITATION.md'}")
    print("Against the planted truth (held-out volumes of each paired run):")
    print(f"  {'run':<24} {'SAMBA r':>8} {'ridge r':>8} {'ceiling':>8} "
          f"{'perfect r':>10} {'HRF |TTP error|':>16} {'TTP rank corr':>14}")
    eeg_only = []
    for result in results.runs:
        if result.summary.get("ephys_only"):
            eeg_only.append(result.label)
            continue
        if "median_pearson_r" not in result.summary:
            continue
        scores = truth_scores(bids_dir, output_dir, result.label)
        print(f"  {result.label:<24} {scores['median_pearson_r']:>8.3f} "
              f"{scores['ridge_median_pearson_r']:>8.3f} {scores['median_noise_ceiling']:>8.3f} "
              f"{scores['perfect_model_r']:>10.3f} {scores['hrf_median_abs_error_s']:>14.2f} s "
              f"{scores['hrf_rank_correlation']:>14.2f}")
    print("  (medians over BOLD parcels; ceiling: noiseless vs noisy BOLD over the run; "
          "perfect r: the noiseless BOLD itself scored on the same volumes)")
    if eeg_only:
        print("Runs with EEG and no BOLD, translated by the participant's model, against the "
              "noiseless BOLD the simulator planted (all volumes):")
        for label in eeg_only:
            print(f"  {label:<24} SAMBA r {eeg_only_truth_r(bids_dir, output_dir, label):.3f}")
    if args.confounds == "none":
        print("  The BOLD was read without confound regression (--confounds none): the "
              "simulated confounds are not in the BOLD.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
