"""One model per participant across runs, EEG-only runs, and reusing models (issue 13).

A simulated dataset with 3 paired runs and 1 EEG-only run per participant (the same planted
HRFs and mixing in every run of a participant, new activity and noise per run) runs through
the participant level (cross-validation by run, the final model, the EEG-only run translated),
the group level with ``--group-model``, and ``--models`` on a second dataset.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from samba_bids.cli.run import main
from samba_bids.config import Config
from samba_bids.errors import NoInputError
from samba_bids.metrics import pearson_r
from samba_bids.simulate import simulate_dataset
from samba_bids.workflows import run

#: Short runs, few epochs: the tests check what is written and scored, not model quality.
DURATION_S, EPOCHS = 200.0, 3
ATLAS = "atlas-Schaefer2018_seg-7n_scale-200"


def _config(bids, out, templates_dir, work, **changes):
    return Config(bids_dir=bids, output_dir=out, templates_dir=templates_dir, work_dir=work,
                  volume_trigger="Volume", bold_space="fsaverage5", max_epochs=EPOCHS,
                  confounds="none", **changes)


def _truth(bids, label, columns):
    """The noiseless parcel BOLD the simulator planted for a run, (M, V)."""
    subject = label.split("_")[0]
    path = (bids / "derivatives" / "truth" / subject / "func"
            / f"{label}_desc-noiseless_timeseries.tsv")
    return pd.read_csv(path, sep="\t")[list(columns)].to_numpy().T


@pytest.fixture(scope="module")
def trained(tmp_path_factory, templates_dir):
    """Two participants with 3 paired runs and 1 EEG-only run each: participant level
    (--cv auto: by run) and group level with --group-model."""
    root = tmp_path_factory.mktemp("multirun")
    bids = root / "bids"
    simulate_dataset(bids, templates_dir, duration_s=DURATION_S, tr_s=2.0, n_channels=32,
                     n_subjects=2, spaces=("fsaverage5",), seed=3, n_runs=3,
                     n_ephys_only_runs=1)
    # sub-01's runs show two clips each (events naming stimuli: decoded at the participant
    # level); sub-02's events name none
    for run_number in (1, 2, 3):
        func = bids / "sub-01" / "func"
        func.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"onset": [0.0, DURATION_S / 2], "duration": [DURATION_S / 2] * 2,
                      "trial_type": ["clip", "clip"], "stim_file": ["a.mp4", "b.mp4"]}).to_csv(
            func / f"sub-01_task-rest_run-{run_number}_events.tsv", sep="\t", index=False)
    out = root / "out"
    config = _config(bids, out, templates_dir, root / "work")
    results = run(config)
    group = run(dataclasses.replace(config, analysis_level="group", group_model=True))
    return bids, out, results, group, config


def test_one_model_per_participant_and_held_out_runs(trained):
    bids, out, results, _, _ = trained
    func, model_dir = out / "sub-01" / "func", out / "sub-01" / "model"
    # one participant model, no per-run model
    assert sorted(p.name for p in model_dir.glob("*.pt")) == ["sub-01_desc-samba_model.pt"]
    model = json.loads((model_dir / "sub-01_desc-samba_model.json").read_text())
    paired = [f"sub-01_task-rest_run-{i}" for i in (1, 2, 3)]
    assert model["TrainedOn"] == paired and model["CrossValidation"] == "runs"
    assert model["RepetitionTime"] == 2.0 and model["Modality"] == "eeg"
    # each paired run: a held-out prediction scored on all its volumes by the fold without it
    for fold, label in enumerate(paired, start=1):
        sidecar = json.loads((func / f"{label}_{ATLAS}_desc-samba_metrics.json").read_text())
        assert sidecar["Fold"] == fold and label not in sidecar["TrainedOn"]
        assert sorted(sidecar["TrainedOn"]) == sorted(set(paired) - {label})
        n_volumes = len(pd.read_csv(func / f"{label}_{ATLAS}_desc-observed_timeseries.tsv",
                                    sep="\t"))
        assert sidecar["TestVolumes"] == list(range(n_volumes))
        assert sidecar["TrainVolumes"] == []
        for hemi in "LR":
            assert (func / f"{label}_hemi-{hemi}_space-fsaverage5_desc-samba_bold.func.gii"
                    ).is_file()
    # the participant's table: one row per parcel and paired run, with its fold
    table = pd.read_csv(func / f"sub-01_{ATLAS}_desc-sambaruns_metrics.tsv", sep="\t")
    assert table.groupby("run_label").size().to_dict() == {label: 200 for label in paired}
    assert table.groupby("run_label")["fold"].first().tolist() == [1, 2, 3]
    hrf = pd.read_csv(func / f"sub-01_{ATLAS}_desc-samba_hrf.tsv", sep="\t")
    assert len(hrf) == 200 and hrf["time_to_peak_s"].between(2, 12).all()
    labels = [r.label for r in results.runs]
    assert labels[:4] == [*paired, "sub-01_task-rest_run-4"]


def test_stimuli_named_in_events_are_decoded_from_the_held_out_runs(trained):
    """sub-01's events name two clips per run: one decoding table, leave-one-run-out; the
    simulated activity is not stimulus-locked, so only the design is checked here (the
    above-chance and shuffled-label behaviour: tests/test_participant_decoding.py)."""
    _, out, _, _, _ = trained
    path = out / "sub-01" / "func" / f"sub-01_task-rest_{ATLAS}_desc-decoding_metrics.tsv"
    table = pd.read_csv(path, sep="\t")
    assert list(table["feature_set"]) == ["samba_latent", "band_power", "ridge_prediction",
                                          "observed_bold"] * 2
    assert list(table["target"]) == ["segment"] * 4 + ["window"] * 4
    # 3 runs x 2 clips x 3 windows of 30 s (15 volumes) in each 100-s clip
    assert (table["n_windows"] == 18).all() and (table["n_folds"] == 3).all()
    assert list(table["n_classes"]) == [2] * 4 + [6] * 4
    assert table["accuracy"].between(0, 1).all()
    assert (table["ci_low"] <= table["accuracy"]).all()
    assert (table["accuracy"] <= table["ci_high"]).all()
    sidecar = json.loads(path.with_suffix("").with_suffix(".json").read_text())
    assert sidecar["WindowLength"] == 30.0 and set(sidecar["Stimuli"]) == {
        f"sub-01_task-rest_run-{i}" for i in (1, 2, 3)}
    assert sidecar["Stimuli"]["sub-01_task-rest_run-2"][1] == {
        "stimulus": "b.mp4", "onset": DURATION_S / 2, "duration": DURATION_S / 2}
    assert "Stimulus decoding" in (out / "sub-01.html").read_text()
    # no stimulus in sub-02's events: no decoding
    assert not list((out / "sub-02" / "func").glob("*desc-decoding*"))
    assert "Stimulus decoding" not in (out / "sub-02.html").read_text()


def test_held_out_scores_match_the_written_series(trained):
    """The metrics are those of the written prediction and observed BOLD, over the whole run."""
    _, out, _, _, _ = trained
    func = out / "sub-02" / "func"
    label = "sub-02_task-rest_run-2"
    predicted = pd.read_csv(func / f"{label}_{ATLAS}_desc-samba_timeseries.tsv", sep="\t")
    observed = pd.read_csv(func / f"{label}_{ATLAS}_desc-observed_timeseries.tsv", sep="\t")
    metrics = pd.read_csv(func / f"{label}_{ATLAS}_desc-samba_metrics.tsv", sep="\t")
    r = pearson_r(predicted.to_numpy().T, observed.to_numpy().T)
    np.testing.assert_allclose(metrics["pearson_r"].to_numpy(), r, atol=1e-4)


def test_eeg_only_run_is_translated_and_scored_against_truth(trained):
    bids, out, _, _, _ = trained
    func = out / "sub-01" / "func"
    label = "sub-01_task-rest_run-4"
    assert not (bids / "derivatives" / "preproc" / "sub-01" / "func" /
                f"{label}_hemi-L_space-fsaverage5_bold.func.gii").exists()
    predicted = pd.read_csv(func / f"{label}_{ATLAS}_desc-samba_timeseries.tsv", sep="\t")
    assert not (func / f"{label}_{ATLAS}_desc-observed_timeseries.tsv").exists()
    sidecar = json.loads((func / f"{label}_hemi-L_space-fsaverage5_desc-samba_bold.json")
                         .read_text())
    assert sidecar["ObservedBOLD"] is False
    assert sidecar["Model"].endswith("sub-01/model/sub-01_desc-samba_model.pt")
    assert sidecar["VolumeTiming"] == "volume triggers 'Volume'"
    # its own truth, not another run's: the prediction follows this run's activity
    own = np.median(pearson_r(predicted.to_numpy().T,
                              _truth(bids, label, predicted.columns)))
    other = np.median(pearson_r(predicted.to_numpy().T,
                                _truth(bids, "sub-01_task-rest_run-1", predicted.columns)))
    assert own > 0.2 and own > other + 0.15, (own, other)
    import nibabel as nib

    img = nib.load(func / f"{label}_hemi-L_space-fsaverage5_desc-samba_bold.func.gii")
    assert len(img.darrays) == len(predicted) and img.darrays[0].data.shape == (10242,)


def test_report_shows_every_run(trained):
    _, out, _, _, _ = trained
    html = (out / "sub-01.html").read_text()
    assert 'id="participant-summary"' in html
    for index in (1, 2, 3, 4):
        assert f"sub-01_task-rest_run-{index}" in html
    assert "no observed BOLD" in html
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "cross-validated by run" in citation and "no BOLD were translated" in citation


def test_group_model_is_saved(trained):
    _, out, _, _, _ = trained
    path = out / "group" / "desc-groupsamba_model.pt"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert len(sidecar["TrainedOn"]) == 6 and sidecar["HistoryVolumes"] == 16


def test_rerun_resumes_from_the_participant_cache(trained, caplog):
    """The same command again: every participant is read from the work-directory cache (one
    entry per participant, keyed by all its runs), nothing is retrained or rewritten."""
    _, out, results, _, config = trained
    model = out / "sub-01" / "model" / "sub-01_desc-samba_model.pt"
    before = model.stat().st_mtime_ns
    with caplog.at_level("INFO", logger="samba_bids.workflows"):
        again = run(config)
    assert [r.label for r in again.runs] == [r.label for r in results.runs]
    assert model.stat().st_mtime_ns == before
    skipped = [m for m in caplog.messages if "finished before" in m]
    assert len(skipped) == 2 and skipped[0].startswith("sub-01:")


def test_models_on_paired_runs_score_and_report_every_run(trained, tmp_path):
    """--models on a participant with BOLD: every run scored on all its volumes by the
    reused model, one report section per run naming the model, nothing trained."""
    bids, trained_out, _, _, config = trained
    out = tmp_path / "out"
    results = run(dataclasses.replace(config, output_dir=out, models=trained_out,
                                      participant_label=["02"]))
    paired = [f"sub-02_task-rest_run-{i}" for i in (1, 2, 3)]
    assert [r.label for r in results.runs] == [*paired, "sub-02_task-rest_run-4"]
    assert not list(out.glob("sub-02/model/*"))
    html = (out / "sub-02.html").read_text()
    for label in paired:
        sidecar = json.loads((out / "sub-02" / "func" / f"{label}_{ATLAS}_desc-samba_"
                              "metrics.json").read_text())
        assert sidecar["CrossValidation"] == "none (model reused)"
    assert html.count("Model (reused, not trained here)") == len(paired)


def test_init_from_group_fine_tunes_the_participant_model(trained, tmp_path):
    """--init-from: the participant's model starts from the group model (its graphs and
    graph path), its ridge is shrunk toward the group's linear path, and the sidecar and the
    methods text say so; without a group model in OUTPUT_DIR, one line names the fix."""
    import torch

    _, trained_out, _, _, config = trained
    out = tmp_path / "out"
    with pytest.raises(NoInputError, match="--group-model"):
        run(dataclasses.replace(config, output_dir=out, init_from="group"))
    assert not out.exists()  # refused before anything was written
    group = trained_out / "group" / "desc-groupsamba_model.pt"
    run(dataclasses.replace(config, output_dir=out, init_from=str(group),
                            participant_label=["02"], cv="blocks"))
    path = out / "sub-02" / "model" / "sub-02_desc-samba_model.pt"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["InitialisedFrom"] == str(group)
    assert sidecar["LinearPath"]["Prior"] == "the pretrained model's linear path"
    tuned = torch.load(path, weights_only=True)["state_dict"]
    pretrained = torch.load(group, weights_only=True)["state_dict"]
    for key in ("bipartite.attention.edge_index", "parcel_gat.attention.edge_index",
                "linear.mask"):
        assert torch.equal(tuned[key], pretrained[key]), key
    assert not torch.equal(tuned["feature_mean"], pretrained["feature_mean"])
    citation = (out / "logs" / "CITATION.md").read_text()
    assert f"fine-tuned from a model trained on other data ({group})" in citation


@pytest.fixture(scope="module")
def second_dataset(tmp_path_factory, templates_dir):
    """Three participants recorded with EEG only (their BOLD removed): the first dataset's
    planted HRFs and mixing (same seed), new activity (one run each, other random streams)."""
    bids = tmp_path_factory.mktemp("eegonly") / "bids"
    simulate_dataset(bids, templates_dir, duration_s=DURATION_S, tr_s=2.0, n_channels=32,
                     n_subjects=3, spaces=("fsaverage5",), seed=3)
    shutil.rmtree(bids / "derivatives" / "preproc")
    return bids


def test_models_translate_eeg_only_participants(trained, second_dataset, templates_dir):
    _, trained_out, _, _, _ = trained
    bids = second_dataset
    out = bids.parent / "out"
    # without --models: one line that names the fix
    with pytest.raises(NoInputError, match="--models"):
        run(_config(bids, out, templates_dir, bids.parent / "work"))
    results = run(_config(bids, out, templates_dir, bids.parent / "work",
                          models=trained_out))
    by_label = {r.label: r.summary for r in results.runs}
    # sub-01 and sub-02 have their own model in the first dataset; sub-03 gets the group model
    own_model = "bids:models:sub-01/model/sub-01_desc-samba_model.pt"
    assert by_label["sub-01_task-rest"]["model"] == own_model
    assert by_label["sub-03_task-rest"]["model"] == "bids:models:group/desc-groupsamba_model.pt"
    description = json.loads((out / "dataset_description.json").read_text())
    assert "models" in description["DatasetLinks"]
    for subject in ("01", "03"):
        label = f"sub-{subject}_task-rest"
        predicted = pd.read_csv(out / f"sub-{subject}" / "func" /
                                f"{label}_{ATLAS}_desc-samba_timeseries.tsv", sep="\t")
        # an unseen participant, translated: its own truth beats another participant's
        own = np.median(pearson_r(predicted.to_numpy().T,
                                  _truth(bids, label, predicted.columns)))
        other_label = "sub-02_task-rest"
        other = np.median(pearson_r(predicted.to_numpy().T,
                                    _truth(bids, other_label, predicted.columns)))
        assert own > 0.15 and own > other + 0.1, (subject, own, other)
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "No model was trained" in citation and "bids:models:" in citation


def test_mismatching_model_exits_65(trained, tmp_path, templates_dir, capsys):
    _, trained_out, _, _, _ = trained
    bids = tmp_path / "bids"
    simulate_dataset(bids, templates_dir, duration_s=DURATION_S, tr_s=2.0, n_channels=24,
                     n_subjects=1, spaces=("fsaverage5",), seed=3)
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--templates-dir", str(templates_dir),
                 "-w", str(tmp_path / "work"), "--models", str(trained_out),
                 "--volume-trigger", "Volume"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 65
    assert len(err) == 1 and "channels differ" in err[0] and "sub-01_task-rest" in err[0]
    assert not list(out.glob("sub-01/func/*"))


@pytest.mark.parametrize("space", ["fsaverage5", "MNI152NLin6Asym", "fsLR"])
def test_prediction_without_any_bold_run_is_written_on_the_atlas_grid(tmp_path, templates_dir,
                                                                      space):
    """A participant without BOLD (--models): the prediction goes onto the atlas's own grid,
    each parcel's value on its vertices, voxels or grayordinates (reloaded with nibabel)."""
    import nibabel as nib

    from samba_bids.bids.layout import EphysRun
    from samba_bids.bold import load_bold_atlas
    from samba_bids.workflows.outputs import template_grid, write_predicted_bold
    from samba_bids.workflows.participant_model import ephys_only_grid_pair

    atlas = load_bold_atlas(templates_dir, space, 200)
    predicted = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    run = EphysRun(entities={"subject": "07", "session": None, "task": "rest", "run": None},
                   ephys_file=tmp_path / "sub-07_task-rest_eeg.vhdr")
    pair = ephys_only_grid_pair(run, None, space)
    files = write_predicted_bold(tmp_path, pair, atlas, predicted, 2.0, {"Sources": []},
                                 {"atlas": "Schaefer2018", "seg": "7n", "scale": 200},
                                 reference=template_grid(atlas))
    names = sorted(f.name for f in files)
    assert all(n.startswith("sub-07_task-rest_") for n in names)
    if space == "fsaverage5":
        img = nib.load(files[0])
        labels = atlas.surface_labels["lh"]
        values = np.column_stack([d.data for d in img.darrays])  # (vertices, volumes)
        np.testing.assert_allclose(values[labels == 1],  # parcel 1 is row 0
                                   np.broadcast_to(predicted[0], ((labels == 1).sum(), 4)))
    elif space == "MNI152NLin6Asym":
        img = nib.load(files[0])
        labels = np.asanyarray(atlas.volume_labels.dataobj)
        assert img.shape == labels.shape + (4,)
        np.testing.assert_allclose(img.get_fdata()[labels == 1][0], predicted[0])
    else:
        dense = nib.load(next(f for f in files if f.name.endswith(".dtseries.nii")))
        assert dense.shape == (4, len(atlas.grayordinate_labels))
        np.testing.assert_allclose(
            dense.get_fdata()[:, np.flatnonzero(atlas.grayordinate_labels == 1)[0]],
            predicted[0])


# --------------------------------------------------------------------------------------------
# The reverse direction across runs (BOLD -> band power), BOLD-only runs, reused reverse models

REVERSE_ATLAS = "atlas-Schaefer2018_seg-7n_scale-100"


@pytest.fixture(scope="module")
def reverse_trained(tmp_path_factory, templates_dir):
    """One participant with 4 runs, the recording of run 4 removed (a BOLD-only run): the
    participant level in reverse (--cv auto: by run), then --models with its output."""
    root = tmp_path_factory.mktemp("reverse")
    bids = root / "bids"
    simulate_dataset(bids, templates_dir, duration_s=DURATION_S, tr_s=2.0, n_channels=32,
                     n_subjects=1, spaces=("fsaverage5",), seed=3, n_runs=4)
    removed = root / "removed"
    removed.mkdir()
    for path in (bids / "sub-01" / "eeg").glob("sub-01_task-rest_run-4_*"):
        shutil.move(path, removed / path.name)
    out = root / "out"
    config = _config(bids, out, templates_dir, root / "work", direction="bold-to-ephys")
    results = run(config)
    reused_out = root / "reused"
    reused = run(dataclasses.replace(config, output_dir=reused_out, models=out,
                                     work_dir=root / "work2"))
    return bids, out, results, reused_out, reused, removed


def test_reverse_model_across_runs(reverse_trained):
    _, out, results, _, _, _ = reverse_trained
    func, model_dir = out / "sub-01" / "func", out / "sub-01" / "model"
    assert sorted(p.name for p in model_dir.glob("*.pt")) == [
        "sub-01_desc-sambareverse_model.pt"]
    model = json.loads((model_dir / "sub-01_desc-sambareverse_model.json").read_text())
    paired = [f"sub-01_task-rest_run-{i}" for i in (1, 2, 3)]
    assert model["TrainedOn"] == paired and model["CrossValidation"] == "runs"
    assert model["LookaheadVolumes"] == 16 and len(model["SourceParcels"]) == 100
    for fold, label in enumerate(paired, start=1):
        sidecar = json.loads((func / f"{label}_{REVERSE_ATLAS}_desc-sambareverse_metrics.json")
                             .read_text())
        assert sidecar["Fold"] == fold
        assert sorted(sidecar["TrainedOn"]) == sorted(set(paired) - {label})
        # the metrics are those of the written prediction and observed band power
        predicted = pd.read_csv(func / f"{label}_{REVERSE_ATLAS}_desc-sambareverse_"
                                "timeseries.tsv", sep="\t")
        observed = pd.read_csv(func / f"{label}_{REVERSE_ATLAS}_desc-observedpower_"
                               "timeseries.tsv", sep="\t")
        metrics = pd.read_csv(func / f"{label}_{REVERSE_ATLAS}_desc-sambareverse_metrics.tsv",
                              sep="\t")
        test = sidecar["TestVolumes"]
        r = pearson_r(predicted.to_numpy()[test].T, observed.to_numpy()[test].T)
        np.testing.assert_allclose(metrics["pearson_r"].to_numpy(), r, atol=1e-4)
    table = pd.read_csv(func / f"sub-01_{REVERSE_ATLAS}_desc-sambareverseruns_metrics.tsv",
                        sep="\t")
    n_rows = len(model["SourceParcels"]) * len(model["Bands"])
    assert table.groupby("run_label").size().to_dict() == {label: n_rows for label in paired}
    assert [r.label for r in results.runs] == [*paired, "sub-01_task-rest_run-4"]
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "cross-validated by run" in citation
    assert "1 BOLD run(s) without an EEG recording were translated into band power" in citation


def test_bold_only_run_gets_predicted_band_power(reverse_trained, templates_dir):
    """Run 4's band power, predicted from its BOLD alone, follows the band power of the
    recording that was removed (prepared by the pipeline from a complete copy of the
    dataset) more than that of another run."""
    from samba_bids.bids.layout import (
        collect_participants,
        default_derivatives,
        index_dataset,
    )
    from samba_bids.workflows import prepare_run
    from samba_bids.workflows.translate import flatten_band_power

    bids, out, _, _, _, removed = reverse_trained
    func = out / "sub-01" / "func"
    label = "sub-01_task-rest_run-4"
    path = func / f"{label}_{REVERSE_ATLAS}_desc-sambareverse_timeseries.tsv"
    predicted = pd.read_csv(path, sep="\t").to_numpy().T  # (N * bands, V)
    assert not (func / f"{label}_{REVERSE_ATLAS}_desc-observedpower_timeseries.tsv").exists()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["ObservedElectrophysiology"] is False
    assert sidecar["Model"].endswith("sub-01/model/sub-01_desc-sambareverse_model.pt")
    copy = bids.parent / "bids-complete"
    shutil.copytree(bids, copy)
    for file in removed.iterdir():
        shutil.copy(file, copy / "sub-01" / "eeg" / file.name)
    work = bids.parent / "work-complete"
    work.mkdir()
    layout = index_dataset(copy, default_derivatives(copy, out), work)
    pair = collect_participants(layout, bold_space="fsaverage5")[0].pairs[3]
    assert pair.label == label
    inputs = prepare_run(pair, _config(copy, out, templates_dir, work), templates_dir)
    observed = flatten_band_power(inputs.features[..., 0])
    other = pd.read_csv(func / f"sub-01_task-rest_run-1_{REVERSE_ATLAS}_desc-observedpower_"
                        "timeseries.tsv", sep="\t").to_numpy().T
    assert observed.shape == predicted.shape
    n = min(observed.shape[1], other.shape[1])
    own_r = np.median(pearson_r(predicted[:, :n], observed[:, :n]))
    other_r = np.median(pearson_r(predicted[:, :n], other[:, :n]))
    assert own_r > other_r + 0.05, (own_r, other_r)


def test_reused_reverse_model_reproduces_its_predictions(reverse_trained):
    """--models in reverse: the BOLD-only run's prediction is the trained model's own (same
    model, same BOLD), the paired runs are scored on all their volumes."""
    _, out, _, reused_out, reused, _ = reverse_trained
    label = "sub-01_task-rest_run-4"
    name = f"{label}_{REVERSE_ATLAS}_desc-sambareverse_timeseries.tsv"
    first = pd.read_csv(out / "sub-01" / "func" / name, sep="\t")
    again = pd.read_csv(reused_out / "sub-01" / "func" / name, sep="\t")
    np.testing.assert_allclose(again.to_numpy(), first.to_numpy(), atol=1e-5)
    assert not list((reused_out / "sub-01").glob("model/*.pt"))
    sidecar = json.loads((reused_out / "sub-01" / "func" /
                          f"sub-01_task-rest_run-2_{REVERSE_ATLAS}_desc-sambareverse_"
                          "metrics.json").read_text())
    assert sidecar["CrossValidation"] == "none (model reused)"
    assert "reverse_median_pearson_r" in {k for r in reused.runs for k in r.summary}
