"""``samba-bids-simulate``: the simulator's command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import SambaBidsError, UsageError
from .balloon import HEMODYNAMICS
from .dataset import simulate_dataset
from .hemodynamics import DEFAULT_SNR
from .scanner import DEFAULT_SCANNER_SFREQ_HZ
from .sensors import SENSOR_LEVELS


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``samba-bids-simulate``."""
    parser = argparse.ArgumentParser(
        prog="samba-bids-simulate",
        description="Write a simulated BIDS EEG-fMRI (or MEG-fMRI) dataset with a known "
                    "ground truth (planted HRFs and mixing) for testing samba-bids.",
    )
    parser.add_argument("output_dir", type=Path, help="dataset folder to write")
    parser.add_argument("--templates-dir", type=Path, default=None,
                        help="templates folder (default: $SAMBA_TEMPLATES, then the cache, "
                             "else an offline fallback with sphere parcels, fsaverage5 only)")
    parser.add_argument("--subjects", type=int, default=1, help="number of participants")
    parser.add_argument("--duration", type=float, default=600.0, help="BOLD run length, s")
    parser.add_argument("--tr", type=float, default=2.0, help="repetition time, s")
    parser.add_argument("--modality", choices=tuple(SENSOR_LEVELS), default="eeg",
                        help="electrophysiology: EEG (BrainVision) or MEG (FIF, synthetic "
                             "magnetometer helmet)")
    parser.add_argument("--channels", type=int, default=None,
                        help="EEG electrodes or MEG magnetometers (default: 64 EEG, 102 MEG)")
    parser.add_argument("--snr", type=float, default=DEFAULT_SNR,
                        help="BOLD SNR as variance ratio (default 16/9: noise ceiling 0.8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--sfreq", type=float, default=250.0, help="EEG/MEG sampling rate, Hz")
    parser.add_argument("--ephys-scale", type=int, default=100, choices=(100, 200, 400))
    parser.add_argument("--bold-scale", type=int, default=200, choices=(100, 200, 400))
    parser.add_argument("--runs", type=int, default=1,
                        help="runs with EEG/MEG and BOLD per session (same planted HRFs and "
                             "mixing in every run of a participant)")
    parser.add_argument("--sessions", type=int, default=1, help="sessions per participant")
    parser.add_argument("--ephys-only-runs", type=int, default=0,
                        help="further runs per session with EEG/MEG but no BOLD (their BOLD "
                             "is in derivatives/truth, to score a translation)")
    parser.add_argument("--mr-artifacts", action="store_true",
                        help="EEG as recorded inside the MR scanner: gradient and pulse "
                             "artefacts and an ECG channel, at --scanner-sfreq; the clean EEG "
                             "and the R-peaks go to derivatives/truth (EEG only)")
    parser.add_argument("--scanner-sfreq", type=float, default=DEFAULT_SCANNER_SFREQ_HZ,
                        metavar="HZ",
                        help="sampling rate of the in-scanner recording, an integer multiple "
                             f"of --sfreq (default {DEFAULT_SCANNER_SFREQ_HZ:g})")
    parser.add_argument("--hemodynamics", choices=HEMODYNAMICS, default="linear",
                        help="how neural drive becomes BOLD: 'linear' (planted double-gamma "
                             "HRFs, default) or 'balloon' (saturating neurovascular coupling "
                             "and the Balloon-Windkessel model, nonlinear; per-parcel "
                             "parameters and effective times to peak go to derivatives/truth)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def main(argv=None) -> int:
    """Entry point of ``samba-bids-simulate``; returns the exit code.

    Parameters
    ----------
    argv : list of str | None
        Arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, else the BIDS-App exit code of the error (64 usage, 66 no input, ...).
    """
    from ..templates.locate import find_templates_dir

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return 0 if exc.code in (0, None) else UsageError.exit_code
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        templates_dir = find_templates_dir(args.templates_dir, fallback=True)
        simulate_dataset(
            args.output_dir, templates_dir, n_subjects=args.subjects, duration_s=args.duration,
            tr_s=args.tr, modality=args.modality, n_channels=args.channels,
            sfreq_hz=args.sfreq, snr=args.snr, ephys_scale=args.ephys_scale,
            bold_scale=args.bold_scale, seed=args.seed, n_runs=args.runs,
            n_sessions=args.sessions, n_ephys_only_runs=args.ephys_only_runs,
            progress=args.verbose, mr_artifacts=args.mr_artifacts,
            scanner_sfreq_hz=args.scanner_sfreq, hemodynamics=args.hemodynamics,
        )
    except SambaBidsError as err:
        sys.stderr.write(f"samba-bids-simulate: {err}\n")
        return err.exit_code
    return 0
