"""Issue 3's acceptance on a reduced simulated dataset (small enough for CI).

The default dataset (10 min, 64 channels) is evaluated by ``benchmarks/evaluate_simulation.py``;
this is the same evaluation on 7 minutes of 32-channel EEG and 100 BOLD parcels, with a smaller
window and at most 60 epochs (about 5 minutes on 2 CPU cores). Every model is
selected on the validation block and scored on the test block only.
"""

import numpy as np
import pytest

from samba_bids.bids.layout import collect_pairs, index_dataset
from samba_bids.config import Config
from samba_bids.evaluation import compare_models
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
                    max_epochs=60, patience=10, device="cpu")
    layout = index_dataset(bids_dir, {"preproc": bids_dir / "derivatives" / "preproc"},
                           root / "work")
    pair = collect_pairs(layout, participant_label=["01"], bold_space="fsaverage5")[0]
    inputs = prepare_run(pair, config, templates_dir)
    truth_hrf = _tsv(_truth(bids_dir) / f"{PREFIX}_desc-truth_hrf.tsv")
    table, _ = compare_models(
        inputs.features, inputs.observed, inputs.split, inputs.parcels.centroids_mm,
        inputs.atlas.centroids_mm, config, tr_s=inputs.tr_s, names=inputs.atlas.names,
        truth_hrf=truth_hrf, n_null=200)
    ceiling = _tsv(_truth(bids_dir) / f"{PREFIX}_desc-noiseceiling_metrics.tsv")
    print(table.to_string())
    return table.set_index("model"), float(np.median(ceiling["noise_ceiling_r"]))


def test_samba_translates_and_needs_its_graphs(evaluation):
    """What holds on the reduced dataset (measured 2026-11-22: SAMBA 0.150, no-graph 0.049,
    ridge 0.169, median noise ceiling 0.80)."""
    table, ceiling = evaluation
    samba = table.loc["samba", "median_pearson_r"]
    assert 0.1 < samba < ceiling
    assert table.loc["ridge", "median_pearson_r"] > 0.1
    # the dense N -> M map (no graph modules) overfits 130 training volumes
    assert table.loc["no-graph", "median_pearson_r"] < samba - 0.05
    # learned HRFs stay near the canonical one: time-to-peak error below the planted spread
    assert table.loc["samba", "median_ttp_abs_error_s"] < 1.5


@pytest.mark.xfail(strict=True, reason="issue 3's targets are not met yet: see the README, "
                                      "'Simulated data with ground truth'")
def test_issue_acceptance_targets(evaluation):
    table, ceiling = evaluation
    samba = table.loc["samba", "median_pearson_r"]
    assert samba >= 0.8 * ceiling
    assert samba >= table.loc["ridge", "median_pearson_r"] + 0.05
    assert table.loc["samba", "median_ttp_abs_error_s"] <= 1.0
    for ablation in ("no-wavelet-attention", "no-graph", "fixed-hrf"):
        assert table.loc[ablation, "median_pearson_r"] < samba
