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
from .stimulus import simulate_stimulus_locked_dataset


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``samba-bids-simulate``."""
    parser = argparse.ArgumentParser(
        prog="samba-bids-simulate",
        description="Write a simulated BIDS EEG-fMRI (or MEG-fMRI) dataset with a known "
                    "ground truth (planted HRFs and mixing) for testing samba-bids; with "
                    "--stimulus-locked, MEG (or EEG) and fMRI of different people who "
                    "watched the same film.",
    )
    parser.add_argument("output_dir", type=Path, help="dataset folder to write")
    parser.add_argument("--templates-dir", type=Path, default=None,
                        help="templates folder (default: $SAMBA_TEMPLATES, then the cache, "
                             "else an offline fallback with sphere parcels, fsaverage5 only)")
    parser.add_argument("--subjects", type=int, default=None,
                        help="number of participants (default 1)")
    parser.add_argument("--duration", type=float, default=None,
                        help="BOLD run length, s (default 600); with --stimulus-locked: "
                             "length of each film segment (default 300)")
    parser.add_argument("--tr", type=float, default=2.0, help="repetition time, s")
    parser.add_argument("--modality", choices=tuple(SENSOR_LEVELS), default=None,
                        help="electrophysiology: EEG (BrainVision) or MEG (FIF, synthetic "
                             "magnetometer helmet); default eeg, meg with --stimulus-locked")
    parser.add_argument("--channels", type=int, default=None,
                        help="EEG electrodes or MEG magnetometers (default: 64 EEG, 102 MEG)")
    parser.add_argument("--snr", type=float, default=DEFAULT_SNR,
                        help="BOLD SNR as variance ratio (default 16/9: noise ceiling 0.8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--sfreq", type=float, default=250.0, help="EEG/MEG sampling rate, Hz")
    parser.add_argument("--ephys-scale", type=int, default=100, choices=(100, 200, 400))
    parser.add_argument("--bold-scale", type=int, default=200, choices=(100, 200, 400))
    parser.add_argument("--runs", type=int, default=None,
                        help="runs with EEG/MEG and BOLD per session (default 1; same planted "
                             "HRFs and mixing in every run of a participant)")
    parser.add_argument("--sessions", type=int, default=None,
                        help="sessions per participant (default 1)")
    parser.add_argument("--ephys-only-runs", type=int, default=None,
                        help="further runs per session with EEG/MEG but no BOLD (default 0; "
                             "their BOLD is in derivatives/truth, to score a translation)")
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
    film = parser.add_argument_group(
        "stimulus-locked design",
        "MEG (or EEG) in some people and fMRI in others who watched the same film, aligned "
        "by film time only (samba_bids.simulate.simulate_stimulus_locked_dataset)")
    film.add_argument("--stimulus-locked", action="store_true",
                      help="write the stimulus-locked dataset (task film, run s = film "
                           "segment s)")
    film.add_argument("--ephys-subjects", type=int, default=None, metavar="A",
                      help="electrophysiology participants sub-01 .. sub-A (default 8)")
    film.add_argument("--bold-subjects", type=int, default=None, metavar="B",
                      help="fMRI participants sub-(A+1) .. sub-(A+B) (default 8)")
    film.add_argument("--segments", type=int, default=None, metavar="S",
                      help="film segments, one run each (default 4)")
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
        _check_design_options(args)
        templates_dir = find_templates_dir(args.templates_dir, fallback=True)
        if args.stimulus_locked:
            simulate_stimulus_locked_dataset(
                args.output_dir, templates_dir,
                n_ephys_subjects=_given(args.ephys_subjects, 8),
                n_bold_subjects=_given(args.bold_subjects, 8),
                n_segments=_given(args.segments, 4),
                segment_duration_s=_given(args.duration, 300.0),
                modality=_given(args.modality, "meg"), tr_s=args.tr,
                n_channels=args.channels, sfreq_hz=args.sfreq, snr=args.snr,
                ephys_scale=args.ephys_scale, bold_scale=args.bold_scale, seed=args.seed,
                progress=args.verbose,
            )
        else:
            simulate_dataset(
                args.output_dir, templates_dir, n_subjects=_given(args.subjects, 1),
                duration_s=_given(args.duration, 600.0), tr_s=args.tr,
                modality=_given(args.modality, "eeg"), n_channels=args.channels,
                sfreq_hz=args.sfreq, snr=args.snr, ephys_scale=args.ephys_scale,
                bold_scale=args.bold_scale, seed=args.seed, n_runs=_given(args.runs, 1),
                n_sessions=_given(args.sessions, 1),
                n_ephys_only_runs=_given(args.ephys_only_runs, 0),
                progress=args.verbose, mr_artifacts=args.mr_artifacts,
                scanner_sfreq_hz=args.scanner_sfreq,
                hemodynamics=args.hemodynamics,
            )
    except SambaBidsError as err:
        sys.stderr.write(f"samba-bids-simulate: {err}\n")
        return err.exit_code
    return 0


def _given(value, default):
    """``value``, or ``default`` where the option was not given (None)."""
    return default if value is None else value


def _check_design_options(args) -> None:
    """Refuse the options of the other design (``--stimulus-locked`` or not).

    Raises
    ------
    UsageError
        With ``--stimulus-locked``: if ``--subjects``, ``--runs``, ``--sessions``,
        ``--ephys-only-runs``, ``--mr-artifacts`` or ``--hemodynamics balloon`` is given;
        without it: if ``--ephys-subjects``, ``--bold-subjects`` or ``--segments`` is.
    """
    if args.stimulus_locked:
        refused = [flag for flag, given in (
            ("--subjects", args.subjects is not None),
            ("--runs", args.runs is not None),
            ("--sessions", args.sessions is not None),
            ("--ephys-only-runs", args.ephys_only_runs is not None),
            ("--mr-artifacts", args.mr_artifacts),
            ("--hemodynamics balloon", args.hemodynamics == "balloon"),
        ) if given]
        if refused:
            raise UsageError(
                f"{', '.join(refused)} cannot be used with --stimulus-locked (one run per "
                "film segment, linear hemodynamics, no scanner); use --ephys-subjects, "
                "--bold-subjects and --segments."
            )
        return
    refused = [flag for flag, value in (("--ephys-subjects", args.ephys_subjects),
                                        ("--bold-subjects", args.bold_subjects),
                                        ("--segments", args.segments)) if value is not None]
    if refused:
        raise UsageError(f"{', '.join(refused)} only apply with --stimulus-locked; add it, "
                         "or use --subjects and --runs.")
