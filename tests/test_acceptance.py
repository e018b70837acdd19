"""Issues 3 and 15's acceptance on a reduced simulated dataset (small enough for CI).

The default dataset (10 min, 64 channels) is evaluated by ``benchmarks/evaluate_simulation.py``;
this is the same evaluation on 7 minutes of 32-channel EEG and 100 BOLD parcels, with a smaller
window and at most 60 epochs. SAMBA, the ablations asserted on (no graph, fixed HRF, linear
path only) and both ridges are fitted (no wavelet attention and no linear path are left to the
benchmark: two more full fits). Every model is selected on the validation block and scored on
the test block only.

The BOLD is read without confound regression (``confounds="none"``): the simulated confounds
are random series that are not in the BOLD, so regressing them out only removes signal that
correlates with them by chance. With the default strategy ("auto": 12 motion columns, CSF,
white matter) even the noiseless BOLD itself scores 0.57 on this test block, below issue 3's
target of 0.8 x 0.80 (measured 2026-11-22; see :func:`samba_bids.evaluation.simulation_ceilings`).
"""

import numpy as np
import pytest

from samba_bids.bids.layout import collect_pairs, index_dataset
from samba_bids.config import Config
from samba_bids.evaluation import compare_models, simulation_ceilings
from samba_bids.metrics import parcel_metrics
from samba_bids.simulate import simulate_dataset
from samba_bids.workflows import prepare_run

from .test_simulate import _truth, _tsv

PREFIX = "sub-01_task-rest"


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, templates_dir):
    root = tmp_path_factory.mktemp("acceptance")
    bids_dir = simulate_dataset(root / "ds", templates_dir, duration_s=420.0, n_channels=32,
                                bold_scale=100, spaces=("fsaverage5",), seed=0)
    config = Config(bids_dir=bids_dir, templates_dir=templates_dir, volume_trigger="Volume",
                    bold_space="fsaverage5", bold_atlas_scale=100, window_trs=10,
                    max_epochs=60, patience=10, device="cpu", confounds="none")
    layout = index_dataset(bids_dir, {"preproc": bids_dir / "derivatives" / "preproc"},
                           root / "work")
    pair = collect_pairs(layout, participant_label=["01"], bold_space="fsaverage5")[0]
    inputs = prepare_run(pair, config, templates_dir)
    truth_hrf = _tsv(_truth(bids_dir) / f"{PREFIX}_desc-truth_hrf.tsv")
    details = {}
    table, _ = compare_models(
        inputs.features, inputs.observed, inputs.split, inputs.parcels.centroids_mm,
        inputs.atlas.centroids_mm, config, tr_s=inputs.tr_s, names=inputs.atlas.names,
        truth_hrf=truth_hrf, n_null=200, details=details,
        models=("samba", "no-graph", "fixed-hrf", "linear-path-only", "ridge", "graph-ridge"))
    names = [str(n) for n in inputs.atlas.names]
    noiseless, noisy = (
        _tsv(_truth(bids_dir) / f"{PREFIX}_desc-{kind}_timeseries.tsv")[names].to_numpy().T
        for kind in ("noiseless", "noisy"))
    bounds = simulation_ceilings(noiseless, noisy, inputs.observed, inputs.split.test)
    print(table.to_string())
    print(bounds)
    return dict(table=table.set_index("model"), bounds=bounds, inputs=inputs, noisy=noisy,
                names=names, details=details)


def test_pipeline_reads_the_simulated_bold(evaluation):
    """Without confound regression the pipeline's parcel BOLD is the simulator's noisy parcel
    BOLD (up to the small per-vertex noise, the linear detrending and the standardisation), so
    a perfect translator would score the noise ceiling of the test block."""
    inputs, bounds = evaluation["inputs"], evaluation["bounds"]
    every = np.arange(inputs.observed.shape[1])
    agreement = parcel_metrics(inputs.observed, evaluation["noisy"], every, evaluation["names"])
    assert agreement["pearson_r"].median() > 0.99
    assert agreement["pearson_r"].min() > 0.9  # detrending removes a parcel's linear trend
    assert bounds["perfect_model_block"] == pytest.approx(bounds["noise_ceiling_block"],
                                                          abs=0.01)
    assert bounds["noise_ceiling_run"] == pytest.approx(0.8, abs=0.02)


def test_samba_translates_and_needs_its_graphs(evaluation):
    """What holds on the reduced dataset (measured: see the README, 'Simulated data with
    ground truth')."""
    table, bounds = evaluation["table"], evaluation["bounds"]
    samba = table.loc["samba", "median_pearson_r"]
    assert 0.1 < samba < bounds["perfect_model_block"]
    assert table.loc["ridge", "median_pearson_r"] > 0.1
    # restricted to the bipartite graph, the ridge fits 124 training volumes better
    assert table.loc["graph-ridge", "median_pearson_r"] > table.loc["ridge",
                                                                   "median_pearson_r"]


def _paired(evaluation, model, reference):
    """Mean and SEM over BOLD parcels of the test r of ``model`` minus ``reference``."""
    metrics = evaluation["details"]["metrics"]
    diff = (metrics[model]["pearson_r"].to_numpy() - metrics[reference]["pearson_r"].to_numpy())
    return diff.mean(), diff.std(ddof=1) / np.sqrt(diff.size)


def test_samba_not_below_ridge(evaluation):
    """Issue 15: SAMBA contains the ridge (its linear path starts at the graph ridge, which
    training replaces only when it beats it clearly on validation), so it must not fall below
    the standard model beyond the noise this test block measures (2 SEM of the per-parcel
    paired difference; measured 2026-12-06: +0.020, SEM 0.017)."""
    mean, sem = _paired(evaluation, "samba", "ridge")
    print(f"SAMBA - ridge over parcels: {mean:+.3f} (SEM {sem:.3f})")
    assert mean > -2 * sem


@pytest.mark.xfail(strict=True, reason="the HRF stage keeps the canonical HRFs on this dataset: "
                                      "no epoch beats them on its 26 validation volumes "
                                      "(median time-to-peak error 0.882 s learned and "
                                      "canonical; 2026-12-06); issue 15")
def test_learned_hrfs_beat_the_canonical_one(evaluation):
    """Learning the HRFs must bring them closer to the planted ones than SPM's canonical HRF
    (which the ridge uses) is. The former check, a time-to-peak error below 1.5 s, passed
    with the canonical HRF itself (about 0.75 s), so it could not fail. The HRFs are learned
    at high SNR (tests/test_training.py: planted HRFs recovered within 0.10 s); here, at the
    default SNR with 124 training volumes, they are not."""
    table = evaluation["table"]
    learned = table.loc["samba", "median_ttp_abs_error_s"]
    canonical = table.loc["ridge", "median_ttp_abs_error_s"]
    print(f"time-to-peak error: learned {learned:.3f} s, canonical {canonical:.3f} s")
    assert learned < canonical


@pytest.mark.xfail(strict=True, reason="issue 3's targets are not met: see the README, "
                                      "'Simulated data with ground truth'")
def test_issue_acceptance_targets(evaluation):
    table, bounds = evaluation["table"], evaluation["bounds"]
    samba = table.loc["samba", "median_pearson_r"]
    assert samba >= 0.8 * bounds["noise_ceiling_run"]
    assert samba >= table.loc["ridge", "median_pearson_r"] + 0.05
    assert table.loc["samba", "median_ttp_abs_error_s"] <= 1.0
    for ablation in ("no-graph", "fixed-hrf", "linear-path-only"):
        assert table.loc[ablation, "median_pearson_r"] < samba
