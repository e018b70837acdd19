"""End-to-end participant level: synthetic GIFTI and NIfTI datasets, and the real ds-real-rest."""

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from samba_bids.cli.run import main

from .bids_checks import check_derivatives
from .synthetic import make_dataset, tree_digest

N_BOLD_PARCELS = 200


def _run(bids_dir, out, tmp_path, templates_dir, *extra):
    argv = [str(bids_dir), str(out), "participant", "--templates-dir", str(templates_dir),
            "-w", str(tmp_path / "work"), "--max-epochs", "2", *extra]
    return main(argv)


def _check_parcel_outputs(func, prefix, n_volumes, names_from):
    atlas = f"{prefix}_atlas-Schaefer2018_seg-7n_scale-200"
    predicted = pd.read_csv(func / f"{atlas}_desc-samba_timeseries.tsv", sep="\t")
    observed = pd.read_csv(func / f"{atlas}_desc-observed_timeseries.tsv", sep="\t")
    assert predicted.shape == observed.shape == (n_volumes, N_BOLD_PARCELS)
    assert list(predicted.columns) == names_from
    assert np.isfinite(predicted.to_numpy()).all()
    hrf = pd.read_csv(func / f"{atlas}_desc-samba_hrf.tsv", sep="\t")
    assert len(hrf) == N_BOLD_PARCELS and list(hrf["parcel"]) == names_from
    assert hrf["time_to_peak_s"].between(2, 12).all()
    metrics = pd.read_csv(func / f"{atlas}_desc-samba_metrics.tsv", sep="\t")
    assert len(metrics) == N_BOLD_PARCELS
    assert metrics[["pearson_r", "spearman_rho"]].abs().le(1).all().all()
    assert metrics["p_value"].between(1 / 1001, 1).all()
    assert metrics["p_fdr"].ge(metrics["p_value"]).all()
    assert metrics[["ridge_pearson_r", "ridge_spearman_rho"]].abs().le(1).all().all()
    sidecar = json.loads((func / f"{atlas}_desc-samba_metrics.json").read_text())
    assert len(sidecar["TestVolumes"]) > 0
    assert set(sidecar["TrainVolumes"]).isdisjoint(sidecar["TestVolumes"])
    return predicted


def _check_sidecars(out):
    check_derivatives(out)


@pytest.mark.slow
def test_participant_level_gifti(tmp_path, templates_dir):
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=80, tr_s=2.0)
    before = tree_digest(root)
    out = root / "derivatives" / "samba-bids"  # the usual place, inside BIDS_DIR/derivatives
    assert _run(root, out, tmp_path, templates_dir, "--participant-label", "sub-01",
                "--volume-trigger", "Volume") == 0
    func = out / "sub-01" / "func"
    for hemi in ("L", "R"):
        img = nib.load(func / f"sub-01_task-rest_hemi-{hemi}_space-fsaverage5_desc-samba_bold.func.gii")
        data = img.agg_data()
        assert data.shape == (10242, 80) and np.isfinite(data).all()
    names = pd.read_csv(func / "sub-01_task-rest_atlas-Schaefer2018_seg-7n_scale-200_desc-observed_timeseries.tsv",
                        sep="\t").columns.tolist()
    _check_parcel_outputs(func, "sub-01_task-rest", 80, names)
    _check_sidecars(out)
    assert (out / "sub-01/model/sub-01_task-rest_desc-samba_model.pt").is_file()
    model_json = json.loads((out / "sub-01/model/sub-01_task-rest_desc-samba_model.json").read_text())
    assert model_json["Config"]["max_epochs"] == 2
    # nothing but our own output folder appeared in the input dataset
    after = {k: v for k, v in tree_digest(root).items() if not k.startswith("derivatives/samba-bids")}
    assert after == before


@pytest.mark.slow
def test_participant_level_mni_nifti(tmp_path, templates_dir):
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=80, tr_s=2.0,
                        spaces=("MNI152NLin6Asym",))
    out = tmp_path / "out"
    assert _run(root, out, tmp_path, templates_dir) == 0
    source = nib.load(root / "derivatives/preproc/sub-01/func/"
                      "sub-01_task-rest_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz")
    predicted = nib.load(out / "sub-01/func/sub-01_task-rest_space-MNI152NLin6Asym_desc-samba_bold.nii.gz")
    assert predicted.shape == source.shape
    np.testing.assert_allclose(predicted.affine, source.affine)
    assert np.isfinite(predicted.get_fdata()).all()
    _check_sidecars(out)


def test_participant_level_reverse_direction(tmp_path, templates_dir):
    """--direction bold-to-ephys: only the reverse outputs, with one metric row per source
    parcel and band, and predicted band power for every volume."""
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=80, tr_s=2.0)
    out = tmp_path / "out"
    assert _run(root, out, tmp_path, templates_dir, "--direction", "bold-to-ephys") == 0
    func = out / "sub-01" / "func"
    prefix = "sub-01_task-rest_atlas-Schaefer2018_seg-7n_scale-100"
    metrics = pd.read_csv(func / f"{prefix}_desc-sambareverse_metrics.tsv", sep="\t")
    predicted = pd.read_csv(func / f"{prefix}_desc-sambareverse_timeseries.tsv", sep="\t")
    observed = pd.read_csv(func / f"{prefix}_desc-observedpower_timeseries.tsv", sep="\t")
    assert len(metrics) == 100 * 4 and set(metrics["band"]) == {"A3", "D3", "D2", "D1"}
    assert metrics["pearson_r"].between(-1, 1).all()
    assert predicted.shape == observed.shape == (80, 400)
    assert list(predicted.columns) == list(metrics["parcel"])
    assert np.isfinite(predicted.to_numpy()).all()
    assert (out / "sub-01/model/sub-01_task-rest_desc-sambareverse_model.pt").exists()
    assert not list(func.glob("*desc-samba_bold*"))  # the forward direction did not run
    _check_sidecars(out)


@pytest.mark.slow
def test_participant_level_real_data(tmp_path, real_rest, templates_dir):
    """The real EEG + real resting BOLD (unpaired people: scores mean nothing, files must be right)."""
    before = tree_digest(real_rest)
    out = tmp_path / "out"
    assert _run(real_rest, out, tmp_path, templates_dir, "--participant-label", "01",
                "-d", str(real_rest / "derivatives" / "preproc")) == 0
    func = out / "sub-01" / "func"
    for hemi in ("L", "R"):
        img = nib.load(func / f"sub-01_task-rest_hemi-{hemi}_space-fsaverage5_desc-samba_bold.func.gii")
        assert len(img.darrays) == 170
        assert all(d.data.shape == (10242,) for d in img.darrays)
        assert np.isfinite(img.agg_data()).all()
    names = [f"7Networks_{h}" for h in ("LH", "RH")]
    predicted = _check_parcel_outputs(func, "sub-01_task-rest", 170,
                                      pd.read_csv(func / "sub-01_task-rest_atlas-Schaefer2018_seg-7n_scale-200_desc-samba_hrf.tsv",
                                                  sep="\t")["parcel"].tolist())
    assert all(c.startswith(tuple(names)) for c in predicted.columns)
    _check_sidecars(out)
    assert tree_digest(real_rest) == before


@pytest.mark.slow
def test_demo_scores_against_truth(tmp_path, templates_dir, capsys):
    """The demo simulates two participants with two paired runs and one EEG-only run each,
    runs the participant and group levels and prints the reports' places, each paired run's
    scores against the truth and the EEG-only run's prediction against its planted BOLD."""
    from samba_bids.cli.demo import eeg_only_truth_r, truth_scores
    from samba_bids.cli.demo import main as demo_main

    assert demo_main([str(tmp_path / "demo"), "--templates-dir", str(templates_dir),
                      "--duration", "200", "--channels", "32", "--max-epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Against the planted truth" in printed
    bids_dir = tmp_path / "demo" / "bids"
    out = bids_dir / "derivatives" / "samba-bids"
    for subject in ("01", "02"):  # two participants by default, each scored in the table
        for run in (1, 2):  # two paired runs by default, one model across them
            label = f"sub-{subject}_task-rest_run-{run}"
            scores = truth_scores(bids_dir, out, label)
            assert 0.7 < scores["median_noise_ceiling"] < 0.9  # the simulator's default SNR
            # no confound regression (the demo's default): the pipeline's BOLD is the noisy
            # one, and a perfect model scores about the ceiling (lower on a short test block)
            assert 0.4 < scores["perfect_model_r"] < scores["median_noise_ceiling"] + 0.05
            assert 0 <= scores["hrf_median_abs_error_s"] < 3
            assert -1 <= scores["median_pearson_r"] <= 1
            row = next(line for line in printed.splitlines()
                       if line.strip().startswith(label + " "))
            assert f"{scores['median_pearson_r']:.3f}" in row
        eeg_only = f"sub-{subject}_task-rest_run-3"
        row = next(line for line in printed.splitlines()
                   if line.strip().startswith(eeg_only) and "SAMBA r" in line)
        assert f"{eeg_only_truth_r(bids_dir, out, eeg_only):.3f}" in row
        assert (out / f"sub-{subject}" / "model" / f"sub-{subject}_desc-samba_model.pt").is_file()
        assert str(out / f"sub-{subject}.html") in printed
    # the demo ran the group level too, and printed where its report is
    assert str(out / "group.html") in printed and (out / "group.html").is_file()
    check_derivatives(out)


@pytest.mark.slow
def test_group_level(tmp_path, templates_dir):
    """Two participants through the participant level, then the group level summarises them:
    one row per participant run with each participant's own median r, per-parcel mean/SD that
    equal those computed here from the participant tables, and group maps."""
    root = make_dataset(tmp_path / "ds", templates_dir, subjects=("01", "02"), n_volumes=80,
                        tr_s=2.0)
    out = tmp_path / "out"
    assert _run(root, out, tmp_path, templates_dir) == 0
    group_argv = [str(root), str(out), "group", "--templates-dir", str(templates_dir),
                  "-w", str(tmp_path / "work")]
    assert main(group_argv) == 0
    prefix = "task-rest_atlas-Schaefer2018_seg-7n_scale-200"
    table = pd.read_csv(out / "group" / f"{prefix}_desc-participants_metrics.tsv", sep="\t")
    assert list(table["participant_id"]) == ["sub-01", "sub-02"]
    per_subject = {
        sub: pd.read_csv(out / f"sub-{sub}/func/sub-{sub}_{prefix}_desc-samba_metrics.tsv",
                         sep="\t")
        for sub in ("01", "02")
    }
    for sub, frame in per_subject.items():
        row = table[table["participant_id"] == f"sub-{sub}"].iloc[0]
        # TSVs hold 6 significant digits (write_tsv's %.6g)
        assert row["median_pearson_r"] == pytest.approx(frame["pearson_r"].median(), abs=1e-5)
        # 0: the ridge-initialised start kept (issue 15)
        assert row["n_test_volumes"] > 0 and row["best_epoch"] in (0, 1, 2)
    parcels = pd.read_csv(out / "group" / f"{prefix}_desc-parcels_metrics.tsv", sep="\t")
    both = np.stack([per_subject[s]["pearson_r"].to_numpy() for s in ("01", "02")])
    np.testing.assert_allclose(parcels["mean_pearson_r"], both.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(parcels["sd_pearson_r"], both.std(axis=0, ddof=1), atol=1e-5)
    assert (parcels["n_pearson_r"] == 2).all()
    assert parcels["mean_time_to_peak_s"].between(2, 12).all()
    check_derivatives(out)
    # --group-model: one model across participants, leave-one-participant-out, from the
    # participant level's cached inputs; then the same under torchrun with two CPU processes
    assert main(group_argv + ["--group-model"]) == 0
    lopo_file = out / "group" / f"{prefix}_desc-groupmodel_metrics.tsv"
    lopo = pd.read_csv(lopo_file, sep="\t")
    assert list(lopo["participant_id"]) == ["sub-01", "sub-02"]
    assert lopo["median_pearson_r"].between(-1, 1).all()
    assert (lopo["n_training_participants"] == 1).all()
    np.testing.assert_allclose(lopo["participant_model_median_pearson_r"],
                               table["median_pearson_r"], atol=1e-5)
    lopo_file.unlink()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "samba_bids", *group_argv, "--group-model"]
    done = subprocess.run(torchrun, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(pd.read_csv(lopo_file, sep="\t")) == 2
    sidecar = json.loads(lopo_file.with_suffix(".json").read_text())
    assert sidecar["DataParallelProcesses"] == 2
    check_derivatives(out)
    # the group level refuses an output folder without participant outputs (exit 66)
    empty = tmp_path / "empty"
    assert main([str(root), str(empty), "group", "-w", str(tmp_path / "work")]) == 66


@pytest.mark.slow
def test_participant_level_cifti(tmp_path, templates_dir):
    """fsLR 91k dtseries in: dtseries (parcel values repeated over grayordinates), the honest
    ptseries and pscalar maps out, with the right CIFTI axes, reloaded with nibabel."""
    from nibabel.cifti2.cifti2_axes import (
        BrainModelAxis,
        ParcelsAxis,
        ScalarAxis,
        SeriesAxis,
    )

    if not (templates_dir / "fsLR").is_dir():
        pytest.skip("no fsLR templates")
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=80, tr_s=2.0, spaces=("fsLR",))
    out = tmp_path / "out"
    assert _run(root, out, tmp_path, templates_dir) == 0
    func = out / "sub-01" / "func"
    atlas = "atlas-Schaefer2018_seg-7n_scale-200"
    dense = nib.load(func / "sub-01_task-rest_space-fsLR_den-91k_desc-samba_bold.dtseries.nii")
    series, models = (dense.header.get_axis(i) for i in range(2))
    assert isinstance(series, SeriesAxis) and isinstance(models, BrainModelAxis)
    assert (series.size, series.step, len(models)) == (80, 2.0, 91282)
    parcel_file = func / f"sub-01_task-rest_space-fsLR_{atlas}_desc-samba_bold.ptseries.nii"
    parcellated = nib.load(parcel_file)
    pseries, parcels = (parcellated.header.get_axis(i) for i in range(2))
    assert isinstance(pseries, SeriesAxis) and isinstance(parcels, ParcelsAxis)
    assert pseries.size == 80 and len(parcels) == 200
    table = pd.read_csv(func / f"sub-01_task-rest_{atlas}_desc-samba_timeseries.tsv", sep="\t")
    assert list(parcels.name) == list(table.columns)
    values = np.asanyarray(parcellated.dataobj)  # (volumes, parcels)
    np.testing.assert_allclose(values, table.to_numpy(), rtol=1e-4, atol=1e-4)
    # the dense file repeats each parcel's value over that parcel's grayordinates
    dense_values = np.asanyarray(dense.dataobj)
    from samba_bids.templates import cifti_atlas, read_cifti_labels

    labels, _, _ = read_cifti_labels(cifti_atlas(templates_dir, 200)[0])
    for k in (0, 57, 199):
        members = dense_values[:, labels == k + 1]
        np.testing.assert_allclose(members, values[:, [k]].repeat(members.shape[1], 1), atol=1e-6)
    assert not dense_values[:, labels == 0].any()
    sidecar = json.loads(
        (func / "sub-01_task-rest_space-fsLR_den-91k_desc-samba_bold.json").read_text())
    assert "REPEATED" in sidecar["Description"]
    metrics = pd.read_csv(func / f"sub-01_task-rest_{atlas}_desc-samba_metrics.tsv", sep="\t")
    testr = nib.load(func / f"sub-01_task-rest_space-fsLR_{atlas}_desc-testr_boldmap.pscalar.nii")
    scalars, map_parcels = (testr.header.get_axis(i) for i in range(2))
    assert isinstance(scalars, ScalarAxis) and isinstance(map_parcels, ParcelsAxis)
    np.testing.assert_allclose(np.asanyarray(testr.dataobj)[0], metrics["pearson_r"], atol=1e-5)
    assert (out / "sub-01.html").is_file() and (out / "logs" / "CITATION.md").is_file()
    check_derivatives(out)
