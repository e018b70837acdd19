"""Shared by the training benchmark and the evaluation: the default simulated participant.

Simulates (once; reused when the folder holds the same parameters) the default dataset of
``samba-bids-simulate`` and turns sub-01 into model inputs with the participant level's own
stages (:func:`samba_bids.workflows.prepare_run`). Features are cached in the work folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from pathlib import Path

import pandas as pd

from samba_bids.bids.layout import collect_pairs, index_dataset
from samba_bids.config import Config
from samba_bids.simulate import DEFAULT_SNR, HEMODYNAMICS, simulate_dataset
from samba_bids.templates import find_templates_dir
from samba_bids.workflows import prepare_run

#: Settings that change the model inputs (the cache key).
_INPUT_FIELDS = ("ephys_atlas_scale", "bold_atlas_scale", "l_freq_hz", "h_freq_hz",
                 "resample_sfreq_hz", "inverse_method", "snr", "confounds", "hrf_support_s",
                 "window_trs", "train_fraction", "validation_fraction", "wavelet",
                 "wavelet_level")


def add_arguments(parser):
    """The options the scripts share: where to simulate, templates, duration, channels,
    epochs, hemodynamics."""
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/samba-bids-eval"),
                        help="folder for the simulated dataset and cached features")
    parser.add_argument("--templates-dir", type=Path, default=None)
    parser.add_argument("--duration", type=float, default=600.0, help="BOLD run, s")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--hemodynamics", choices=HEMODYNAMICS, default="linear",
                        help="simulated hemodynamics: 'linear' (planted double-gamma HRFs) or "
                             "'balloon' (saturating coupling and Balloon-Windkessel model)")
    return parser


def simulated_inputs(out_dir, templates_dir=None, *, duration_s=600.0, n_channels=64,
                     snr=DEFAULT_SNR, seed=0, config=None, hemodynamics="linear",
                     n_subjects=1, subject="01"):
    """Simulate (or reuse) a dataset under ``out_dir``; return ``(inputs, truth, config)``.

    ``inputs`` is :class:`samba_bids.workflows.RunInputs` of ``subject`` (of ``n_subjects``
    simulated with ``seed``: the planted mixing and HRFs are shared by them, the activity and
    noise are each subject's own); ``truth`` a dict with the
    planted ``hrf`` frame (Balloon hemodynamics: ``parcel`` and the effective HRF's
    ``time_to_peak_s``), the ``noise_ceiling`` frame, the ``parameters`` sidecar, the truth
    folder (``dir``), the ``noiseless`` and ``noisy`` parcel BOLD (arrays (M, V), in
    ``inputs.atlas.names`` order) and, for ``hemodynamics="balloon"``, the ``hemodynamics``
    frame (Balloon parameters per parcel). The dataset folder is
    ``sim-[<n>sub-]<duration>s-<channels>ch[-<hemodynamics>]-seed<seed>`` (no hemodynamics for
    linear, no ``<n>sub`` for one subject). ``truth["label"]`` is the run's file prefix.
    """
    out_dir = Path(out_dir)
    templates_dir = find_templates_dir(templates_dir)
    model = "" if hemodynamics == "linear" else f"-{hemodynamics}"
    subjects = "" if n_subjects == 1 else f"{n_subjects}sub-"
    bids_dir = out_dir / f"sim-{subjects}{duration_s:g}s-{n_channels}ch{model}-seed{seed}"
    label = f"sub-{subject}_task-rest"
    truth_dir = bids_dir / "derivatives" / "truth" / f"sub-{subject}" / "func"
    last = bids_dir / "derivatives" / "truth" / f"sub-{n_subjects:02d}" / "func"
    if not (last / f"sub-{n_subjects:02d}_task-rest_desc-truth_parameters.json").exists():
        simulate_dataset(bids_dir, templates_dir, duration_s=duration_s, n_channels=n_channels,
                         snr=snr, seed=seed, spaces=("fsaverage5",),
                         hemodynamics=hemodynamics, n_subjects=n_subjects)
    config = config or Config()
    config = dataclasses.replace(config, bids_dir=bids_dir, templates_dir=templates_dir,
                                 volume_trigger="Volume", bold_space="fsaverage5")
    key = json.dumps({k: v for k, v in config.to_dict().items() if k in _INPUT_FIELDS},
                     sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    who = "" if subject == "01" else f"-sub{subject}"
    cache = out_dir / "work" / f"{bids_dir.name}{who}-{digest}.pkl"
    if cache.exists():
        inputs = pickle.loads(cache.read_bytes())
    else:
        layout = index_dataset(bids_dir, {"preproc": bids_dir / "derivatives" / "preproc"},
                               out_dir / "work")
        pair = collect_pairs(layout, participant_label=[subject], bold_space="fsaverage5")[0]
        inputs = prepare_run(pair, config, templates_dir)
        inputs.bold = None  # images are not needed here
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(inputs))
    truth = {
        "dir": truth_dir, "label": label,
        "hrf": pd.read_csv(truth_dir / f"{label}_desc-truth_hrf.tsv", sep="\t"),
        "noise_ceiling": pd.read_csv(truth_dir / f"{label}_desc-noiseceiling_metrics.tsv",
                                     sep="\t"),
        "parameters": json.loads((truth_dir / f"{label}_desc-truth_parameters.json")
                                 .read_text()),
    }
    if hemodynamics != "linear":
        truth["hemodynamics"] = pd.read_csv(
            truth_dir / f"{label}_desc-truth_hemodynamics.tsv", sep="\t")
    for kind in ("noiseless", "noisy"):  # (M, V) in the pipeline's parcel order
        frame = pd.read_csv(truth_dir / f"{label}_desc-{kind}_timeseries.tsv", sep="\t")
        truth[kind] = frame[[str(n) for n in inputs.atlas.names]].to_numpy().T
    return inputs, truth, config
