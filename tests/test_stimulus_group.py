"""The group level with stimulus pairing on a simulated stimulus-locked dataset (issue 16).

EEG of some people and BOLD of others, who watched the same three-segment film with their own
onsets (``samba-bids-simulate --stimulus-locked``): the group level pairs them by the
``stim_file`` of each run's events, predicts each held-out segment's group BOLD, and the
prediction is scored against the planted stimulus-driven BOLD of ``derivatives/truth``. Bad
events (no stimulus anywhere; an onset past the end of a run) are one line, an exit code, and
nothing written.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from samba_bids.cli.run import main
from samba_bids.config import Config
from samba_bids.metrics import pearson_r
from samba_bids.simulate import simulate_stimulus_locked_dataset
from samba_bids.workflows import run

ATLAS = "atlas-Schaefer2018_seg-7n_scale-100"
SEGMENT_S, N_SEGMENTS = 120.0, 3


@pytest.fixture(scope="module")
def stimulus(tmp_path_factory, templates_dir):
    root = tmp_path_factory.mktemp("stimulus")
    bids = simulate_stimulus_locked_dataset(
        root / "bids", templates_dir, n_ephys_subjects=4, n_bold_subjects=3,
        n_segments=N_SEGMENTS, segment_duration_s=SEGMENT_S, modality="eeg", n_channels=32,
        sfreq_hz=100.0, bold_scale=100, seed=5)
    config = Config(bids_dir=bids, output_dir=root / "out", templates_dir=templates_dir,
                    work_dir=root / "work", analysis_level="group", pairing="stimulus",
                    bold_atlas_scale=100, max_epochs=3, confounds="none")
    return bids, root / "out", run(config), config


def _truth(bids, segment):
    return pd.read_csv(bids / "derivatives" / "truth"
                       / f"task-film_run-{segment}_desc-stimulus_timeseries.tsv", sep="\t")


def _table(out, segment, desc):
    return pd.read_csv(out / "group" / f"task-film_run-{segment}_{ATLAS}_desc-{desc}_"
                                       "timeseries.tsv", sep="\t")


def test_outputs_of_every_held_out_segment(stimulus):
    _, out, results, _ = stimulus
    group = out / "group"
    for segment in range(1, N_SEGMENTS + 1):
        for desc in ("stimsamba", "stimridge", "stimgroup"):
            table = _table(out, segment, desc)
            assert table.shape == (int(SEGMENT_S / 2), 100)
        for hemi in "LR":
            sidecar = json.loads((group / f"task-film_run-{segment}_hemi-{hemi}_space-"
                                          "fsaverage5_desc-stimsamba_bold.json").read_text())
            assert sidecar["Pairing"] == "stimulus"
            assert sidecar["Stimulus"] == f"film_seg-{segment}.mp4"
            assert sidecar["EphysParticipants"] == ["01", "02", "03", "04"]
            assert sidecar["BoldParticipants"] == ["05", "06", "07"]
    summary = pd.read_csv(group / f"task-film_{ATLAS}_desc-stimulus_metrics.tsv", sep="\t")
    assert summary["segment"].tolist() == [f"film_seg-{s}.mp4" for s in (1, 2, 3)]
    assert {"pooled_spearman_30s", "pooled_spearman_60s", "ridge_pooled_spearman_30s",
            "median_isc", "median_ceiling_r"} <= set(summary.columns)
    assert (group / f"task-film_{ATLAS}_desc-stimsamba_hrf.tsv").is_file()
    assert (group / "task-film_desc-stimsamba_model.pt").is_file()
    # the learned HRF map and the mean held-out r map, in the BOLD space (fsaverage5 GIFTI)
    hrf = pd.read_csv(group / f"task-film_{ATLAS}_desc-stimsamba_hrf.tsv", sep="\t")
    for desc in ("stimhrfttp", "stimtestr"):
        for hemi in "LR":
            image = nib.load(group / f"task-film_hemi-{hemi}_space-fsaverage5_desc-{desc}_"
                                     "boldmap.func.gii")
            values = image.darrays[0].data
            assert values.shape == (10242,) and np.isfinite(values).all()
            if desc == "stimhrfttp":  # every vertex inside a parcel holds its parcel's value
                inside = values[values != 0]
                assert inside.size > 8000
                assert np.isin(np.round(inside, 4),
                               np.round(hrf["time_to_peak_s"].to_numpy(np.float32), 4)).all()
    html = (out / "group_task-film_pairing-stimulus.html").read_text()
    assert "were paired by the stimulus they were shown" in html
    assert results.runs[0].summary["n_segments"] == N_SEGMENTS
    # the methods boilerplate and the settings guard of the stimulus pairing, in logs/
    citation = out / "logs" / "CITATION_pairing-stimulus.md"
    assert citation.is_file() and citation in results.runs[0].outputs
    assert "of 4 participants and BOLD of 3 other participants" in citation.read_text()
    assert (out / "logs" / "config_pairing-stimulus.json").is_file()


def test_held_out_segments_are_scored_against_the_planted_stimulus_response(stimulus):
    """Each held-out segment's prediction follows that segment's planted stimulus-driven
    BOLD, not another segment's; the target (mean of three people) follows it closely."""
    bids, out, _, _ = stimulus
    own, other, target = [], [], []
    for segment in range(1, N_SEGMENTS + 1):
        truth = _truth(bids, segment)
        predicted = _table(out, segment, "stimsamba")[truth.columns].to_numpy().T
        wrong = _truth(bids, segment % N_SEGMENTS + 1)[truth.columns].to_numpy().T
        own.append(np.nanmedian(pearson_r(predicted, truth.to_numpy().T)))
        other.append(np.nanmedian(pearson_r(predicted, wrong)))
        observed = _table(out, segment, "stimgroup")[truth.columns].to_numpy().T
        target.append(np.nanmedian(pearson_r(observed, truth.to_numpy().T)))
    # measured 2026-12-06: own 0.35, 0.34, 0.39; another segment's -0.03, 0.23, -0.08;
    # target 0.78, 0.69, 0.78
    assert min(target) > 0.6, target
    assert min(own) > 0.2 and np.all(np.greater(own, other)), (own, other)
    assert np.mean(own) - np.mean(other) > 0.15, (own, other)


def test_decoding_above_chance_and_at_chance_with_shuffled_labels(stimulus):
    """Which segment is a 30-s window from: above chance (p < 0.05) from the best-decoded
    feature set on the simulated data; at chance when each participant's segment labels are
    shuffled (the features then carry no information about the label)."""
    from samba_bids.decoding import decode_stimulus, window_features

    _, out, _, config = stimulus
    both = pd.read_csv(out / "group" / f"task-film_{ATLAS}_desc-decoding_metrics.tsv",
                       sep="\t")
    assert list(both["target"]) == ["segment"] * 4 + ["window"] * 4
    table = both[both["target"] == "segment"].set_index("feature_set")
    # measured 2026-12-06 with the features averaged (the default then): ridge prediction
    # 0.98 (p 0.01), SAMBA latent 0.52 (p 0.05), band power 0.31, observed BOLD 0.33
    # (exactly chance: each run's BOLD is centred, so its windows' means do not differ
    # between segments); chance 1/3
    assert set(table.index) == {"samba_latent", "band_power", "ridge_prediction",
                                "observed_bold"}
    assert (table["accuracy"] > table["chance"]).any()
    # which window of the film: pattern matching, so the observed BOLD (ISC > 0) is decodable
    windows = both[both["target"] == "window"].set_index("feature_set")
    assert (windows["n_classes"] == windows["n_windows"] / windows["n_folds"]).all()
    assert windows.loc["observed_bold", "accuracy"] > 3 / windows.loc["observed_bold",
                                                                       "n_classes"]
    assert windows.loc["observed_bold", "p_value"] < 0.05
    best = table["accuracy"].idxmax()
    assert table.loc[best, "p_value"] < 0.05 and table.loc[best, "ci_low"] > 1 / N_SEGMENTS
    # each participant's segment labels permuted at random: no information left
    from samba_bids.workflows.stimulus import decoding_inputs

    result = stimulus[2].runs[0].detail
    rng = np.random.default_rng(0)
    relabel = {}
    X, labels, groups = [], [], []
    for series, segment, subject in decoding_inputs(result)[best]:
        relabel.setdefault(subject, rng.permutation(N_SEGMENTS))
        windows, _ = window_features(series, 15)
        X.append(windows)
        labels += [relabel[subject][segment]] * len(windows)
        groups += [subject] * len(windows)
    shuffled = decode_stimulus(np.concatenate(X), labels, groups, n_permutations=99, seed=0)
    # measured: accuracy 0.23, p 0.74
    assert shuffled.p_value > 0.05
    assert shuffled.ci_low <= 1 / N_SEGMENTS <= shuffled.ci_high


def _copy(bids, tmp_path):
    copy = tmp_path / "bids"
    shutil.copytree(bids, copy)
    return copy


def test_no_stimulus_in_the_events_exits_18_and_writes_nothing(stimulus, tmp_path, capsys):
    bids, _, _, config = stimulus
    copy = _copy(bids, tmp_path)
    for events in copy.glob("sub-*/*/*_events.tsv"):
        table = pd.read_csv(events, sep="\t")
        table.drop(columns="stim_file").to_csv(events, sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "out"
    code = main([str(copy), str(out), "group", "--pairing", "stimulus", "--templates-dir",
                 str(config.templates_dir), "-w", str(tmp_path / "work")])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert code == 18
    assert len(err) == 1 and "no stimulus is shown in both" in err[0], err
    assert not out.exists() or not any(out.rglob("*.tsv"))


def test_onset_past_the_end_of_a_bold_run_exits_65_and_writes_nothing(stimulus, tmp_path,
                                                                        capsys):
    bids, _, _, config = stimulus
    copy = _copy(bids, tmp_path)
    events = copy / "sub-05" / "func" / "sub-05_task-film_run-1_events.tsv"
    table = pd.read_csv(events, sep="\t")
    table.loc[table["trial_type"] == "film", "onset"] += 100.0  # past the run's end
    table.to_csv(events, sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "out"
    code = main([str(copy), str(out), "group", "--pairing", "stimulus", "--templates-dir",
                 str(config.templates_dir), "-w", str(tmp_path / "work")])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert code == 65
    assert len(err) == 1 and "sub-05_task-film_run-1" in err[0] and "onset" in err[0], err
    assert not out.exists() or not any(out.rglob("*.tsv"))
