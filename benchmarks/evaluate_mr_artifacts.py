"""Evaluation of MR artefact removal: EEG recorded in the scanner vs the same EEG recorded clean.

Simulates participants whose EEG was recorded inside the scanner
(``samba-bids-simulate --mr-artifacts``: 5 kHz, gradient artefact of every slice and volume at
about 100 times the EEG, pulse artefact after every heartbeat, an ECG channel; the clean EEG
kept in ``derivatives/truth``) and runs the participant level's stages three ways on each:

- ``auto``: the defaults (``--mr-artifacts auto``: the gradient artefact is detected and removed
  by average artefact subtraction, the pulse artefact by PCA-OBS with the ECG's R-peaks);
- ``none``: ``--mr-artifacts none`` (the recording as stored, today's behaviour before issue 14);
- ``clean``: the clean recording of the same participant (the truth's ``desc-clean`` EEG, read
  as a cleaned recording from a derivatives folder, as ``-d truth=...`` would).

It reports the cleaning (per channel, on the preprocessed EEG at 100 Hz, 0.5-45 Hz: the
Pearson r of the cleaned EEG with the clean truth, and per band the r over volumes of the log
band power, i.e. how well each band's power is recovered) and the translation: the median test
Pearson r of SAMBA and of the ridge baseline on each run's held-out test block, beside the
oracle (the planted model applied to that arm's own source estimates) and the perfect
translator (the noiseless BOLD), with the paired differences auto - clean and auto - none over
participants (mean and SEM).

Seeds: the evaluation dataset's seed (``--seed``, default 1414) was fixed before any result was
seen; development used seed 11 (300 s, 16 channels).

    python benchmarks/evaluate_mr_artifacts.py --templates-dir ../shared/data/templates
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from evaluate_runs import UnitStore, median_r, oracle_prediction, truth_of  # noqa: E402

from samba_bids import simulate  # noqa: E402
from samba_bids.bids.layout import collect_participants, index_dataset  # noqa: E402
from samba_bids.config import Config  # noqa: E402
from samba_bids.evaluation import simulation_ceilings  # noqa: E402
from samba_bids.templates import find_templates_dir  # noqa: E402
from samba_bids.workflows import prepare_run  # noqa: E402
from samba_bids.workflows.translate import fit_forward_model, score_run  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "evaluate_mr_artifacts"
#: Bands of the band-power recovery, Hz.
BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0),
         "gamma": (30.0, 45.0)}
ARMS = ("auto", "none", "clean")


def clean_pair(pair, bids):
    """The same run with the truth's clean EEG as its recording (a cleaned derivative)."""
    clean = (bids / "derivatives" / "truth" / pair.ephys_file.relative_to(bids).parent
             / pair.ephys_file.name.replace("_eeg.vhdr", "_desc-clean_eeg.vhdr"))
    return dataclasses.replace(pair, ephys_file=clean, ephys_derivatives="truth")


def preprocessed_eeg(pair, config, *, upsample_to=None):
    """The EEG after MR artefact removal (``config.mr_artifacts``) and preprocessing, as
    :func:`samba_bids.workflows.inputs.prepare_ephys` makes it: (channels, times) at 100 Hz,
    and the volume onsets (s).

    ``upsample_to`` (Hz): first upsample the recording as the simulator does
    (:func:`scipy.signal.resample_poly`), so that the clean reference goes through the same
    filter and resampling chain as the in-scanner recording: the same EEG preprocessed from
    250 Hz and from 5 kHz differs by about one 100-Hz sample of delay (measured on the
    development dataset: 3.3x the clean EEG's power at 30-45 Hz, 0.4x at 8-13 Hz), which
    would otherwise count as a cleaning residual.
    """
    import mne

    from samba_bids.alignment import annotation_onsets
    from samba_bids.ephys import plan_mr_artifacts, preprocess_raw, read_ephys

    raw = read_ephys(pair.ephys_file)
    if upsample_to is not None:
        from scipy.signal import resample_poly

        raw.load_data(verbose=False).pick("eeg")
        up = int(round(upsample_to / raw.info["sfreq"]))
        info = mne.create_info(raw.ch_names, upsample_to, "eeg")
        upsampled = mne.io.RawArray(resample_poly(raw.get_data(), up, 1, axis=1), info,
                                    verbose=False)
        upsampled.set_montage(raw.get_montage())
        upsampled.set_annotations(mne.Annotations(
            annotation_onsets(raw, config.volume_trigger), 0.0, config.volume_trigger))
        raw = upsampled
    removal = plan_mr_artifacts(
        raw, mode=config.mr_artifacts, trigger=config.volume_trigger,
        picks=mne.pick_types(raw.info, eeg=True, exclude="bads"),
        band_hz=(config.l_freq_hz, config.h_freq_hz),
        from_derivatives=pair.ephys_derivatives is not None)
    out = preprocess_raw(raw, modality="eeg", l_freq_hz=config.l_freq_hz,
                         h_freq_hz=config.h_freq_hz, sfreq_hz=config.resample_sfreq_hz,
                         mr_artifacts=removal)
    return out.get_data(), out.info["sfreq"], annotation_onsets(out, config.volume_trigger), \
        removal.to_sidecar()


def cleaning_scores(cleaned, clean, sfreq, onsets, tr_s):
    """Per channel: r of the cleaned EEG with the clean truth over the scan, and per band the r
    over volumes of the log band power (Welch per volume). Medians over channels."""
    from scipy.signal import welch

    lo, hi = int(onsets[0] * sfreq), int((onsets[-1] + tr_s) * sfreq)
    a, b = cleaned[:, lo:hi], clean[:, lo:hi]
    scores = {"eeg_r": float(np.median([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])),
              "residual_power": float(((a - b) ** 2).sum() / (b ** 2).sum())}
    n = int(round(tr_s * sfreq))
    starts = (np.asarray(onsets) * sfreq).astype(int)
    segments = [np.stack([x[:, s:s + n] for s in starts]) for x in (cleaned, clean)]
    freqs, pa = welch(segments[0], sfreq, nperseg=n)  # (V, C, F)
    _, pb = welch(segments[1], sfreq, nperseg=n)
    for band, (f0, f1) in BANDS.items():
        keep = (freqs >= f0) & (freqs < f1)
        la, lb = np.log(pa[..., keep].sum(-1)), np.log(pb[..., keep].sum(-1))  # (V, C)
        scores[f"{band}_power_r"] = float(np.median(
            [np.corrcoef(la[:, c], lb[:, c])[0, 1] for c in range(la.shape[1])]))
    return scores


def evaluate_participant(participant, config, bids, names, templates_dir) -> dict:
    """The three arms of one participant's runs: one row per run and arm."""
    rows = []
    for pair in participant.pairs:
        truth = truth_of(bids, pair.label, names)
        pairs = {"auto": pair, "none": pair, "clean": clean_pair(pair, bids)}
        configs = {"auto": config, "none": dataclasses.replace(config, mr_artifacts="none"),
                   "clean": config}
        scanner_sfreq = float(truth["parameters"]["MRArtifacts"]["ScannerSamplingFrequency"])
        clean_eeg, sfreq, onsets, _ = preprocessed_eeg(pairs["clean"], configs["clean"],
                                                       upsample_to=scanner_sfreq)
        for arm in ARMS:
            inputs = prepare_run(pairs[arm], configs[arm], templates_dir)
            test = inputs.split.test
            model = fit_forward_model(configs[arm], [inputs], [inputs.split])
            scores = score_run(configs[arm], model, inputs, inputs.split)
            bounds = simulation_ceilings(truth["noiseless"], truth["noisy"], inputs.observed,
                                         test)
            row = {"subject": participant.subject, "run": pair.label, "arm": arm,
                   "samba": median_r(scores.predicted, inputs.observed, test),
                   "ridge": median_r(scores.ridge_predicted, inputs.observed, test),
                   "oracle": median_r(oracle_prediction(inputs, truth), inputs.observed, test),
                   "perfect": float(bounds["perfect_model_block"])}
            if arm != "clean":
                cleaned, _, _, entry = preprocessed_eeg(pairs[arm], configs[arm])
                row.update(cleaning_scores(cleaned, clean_eeg, sfreq, onsets, inputs.tr_s))
                row["residual_gradient_db"] = (entry.get("ResidualGradientPowerDb") or {}).get(
                    "SliceHarmonics")
            rows.append(row)
            print(f"{pair.label} {arm}: SAMBA {row['samba']:.3f}, ridge {row['ridge']:.3f}, "
                  f"oracle {row['oracle']:.3f}", flush=True)
    return {"rows": rows}


def paired(table, column, arm, reference):
    """Mean and SEM over participants of ``column`` (arm - reference)."""
    wide = table.pivot_table(index="subject", columns="arm", values=column)
    diff = wide[arm] - wide[reference]
    sem = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return float(diff.mean()), float(sem)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/samba-bids-eval-mr"))
    parser.add_argument("--templates-dir", type=Path, default=None)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--duration", type=float, default=600.0, help="BOLD run, s")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1414,
                        help="the evaluation dataset (fixed before looking; development: 11)")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    templates_dir = find_templates_dir(args.templates_dir)
    name = (f"sim-{args.subjects}sub-{args.duration:g}s-{args.channels}ch-5kHz-"
            f"seed{args.seed}")
    bids = args.out_dir / name
    if not (bids / "derivatives" / "truth").is_dir():
        simulate.simulate_dataset(bids, templates_dir, duration_s=args.duration,
                                  n_channels=args.channels, n_subjects=args.subjects,
                                  spaces=("fsaverage5",), seed=args.seed, mr_artifacts=True)
    config = Config(bids_dir=bids, templates_dir=templates_dir, volume_trigger="Volume",
                    bold_space="fsaverage5", max_epochs=args.max_epochs)
    layout = index_dataset(bids, {"preproc": bids / "derivatives" / "preproc"},
                           args.out_dir / "work")
    participants = collect_participants(layout, bold_space="fsaverage5")
    names = None
    store = UnitStore(args.results_dir or RESULTS / name / f"max{args.max_epochs}epochs")
    rows = []
    for participant in participants:
        if names is None:
            from samba_bids.bold import load_bold_atlas

            names = list(load_bold_atlas(templates_dir, "fsaverage5",
                                         config.bold_atlas_scale).names)
        unit = store.get(f"sub-{participant.subject}",
                         lambda p=participant: evaluate_participant(p, config, bids, names,
                                                                    templates_dir))
        rows.extend(unit["rows"])
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print("\nPer run and arm (median over parcels; cleaning: median over channels)")
    print(table.round(3).to_string(index=False))
    print("\nMean over participants")
    print(table.groupby("arm", sort=False).mean(numeric_only=True).round(3).to_string())
    print("\nPaired differences over participants (mean, SEM)")
    for column in ("samba", "ridge", "oracle"):
        for arm, ref in (("auto", "clean"), ("auto", "none")):
            mean, sem = paired(table, column, arm, ref)
            print(f"  {column:7s} {arm} - {ref}: {mean:+.3f} (SEM {sem:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
