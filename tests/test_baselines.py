"""Canonical-HRF band-power ridge baseline and the model comparison."""

import types

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from samba_bids.config import Config
from samba_bids.evaluation import (
    MODEL_NAMES,
    compare_models,
    simulation_ceilings,
    summarise_seeds,
)
from samba_bids.metrics import parcel_metrics
from samba_bids.model.baselines import canonical_kernel, fit_ridge_baseline
from samba_bids.model.wavelet import wavelet_band_features

from .test_training import SMALL, simulate

TR, HISTORY = 2.0, 16


def _planted(seed=0, n_src=6, n_bands=4, n_bold=5, n_volumes=500, noise=0.5):
    """Log band power (AR(1)) -> canonical-HRF convolution -> linear mix -> BOLD + noise."""
    rng = np.random.default_rng(seed)
    white = rng.normal(size=(n_src, n_volumes + 50, n_bands))
    log_power = np.zeros_like(white)
    for t in range(1, white.shape[1]):
        log_power[:, t] = 0.5 * log_power[:, t - 1] + white[:, t]
    log_power = log_power[:, 50:] - 3.0
    features = np.stack([log_power, 0.5 * log_power + rng.normal(size=log_power.shape)], -1)
    design = log_power.transpose(1, 0, 2).reshape(n_volumes, -1)  # (V, P)
    regressors = lfilter(canonical_kernel(TR), [1.0], design - design.mean(0), axis=0)
    weights = rng.normal(size=(design.shape[1], n_bold)) * (rng.random((design.shape[1],
                                                                         n_bold)) < 0.3)
    clean = (regressors @ weights).T
    clean /= clean.std(axis=1, keepdims=True)
    bold = clean + noise * rng.normal(size=clean.shape)
    usable = n_volumes - 2 * HISTORY
    n_train, n_val = int(usable * 0.7), int(usable * 0.15)
    split = types.SimpleNamespace(
        train=np.arange(n_train), validation=np.arange(n_train + HISTORY,
                                                       n_train + HISTORY + n_val),
        test=np.arange(n_train + n_val + 2 * HISTORY, n_volumes), history=HISTORY, tr_s=TR)
    return features, bold, clean, split


def test_ridge_recovers_planted_relation_near_noise_ceiling():
    features, bold, clean, split = _planted()
    fit = fit_ridge_baseline(features, bold, split, tr_s=TR)
    predicted = fit.predict(features)
    assert predicted.shape == bold.shape
    names = [f"p{m}" for m in range(bold.shape[0])]
    r = parcel_metrics(predicted, bold, split.test, names)["pearson_r"].to_numpy()
    ceiling = parcel_metrics(clean, bold, split.test, names)["pearson_r"].to_numpy()
    assert np.all(r > ceiling - 0.05), (r, ceiling)
    assert fit.alphas[0] <= fit.alpha <= fit.alphas[-1]
    assert fit.coefficients.shape == (features.shape[0] * features.shape[2], bold.shape[0])


def test_ridge_alpha_from_validation_only():
    features, bold, _, split = _planted(seed=1, noise=1.0)
    reference = fit_ridge_baseline(features, bold, split, tr_s=TR)
    rng = np.random.default_rng(3)
    features2, bold2 = features.copy(), bold.copy()
    features2[:, split.test] = rng.normal(size=features2[:, split.test].shape) * 5
    bold2[:, split.test] = rng.normal(size=bold2[:, split.test].shape) * 5
    changed = fit_ridge_baseline(features2, bold2, split, tr_s=TR)
    for name in ("coefficients", "intercept", "validation_mse", "feature_mean", "feature_std",
                 "regressor_mean", "regressor_std"):
        np.testing.assert_array_equal(getattr(changed, name), getattr(reference, name))
    assert changed.alpha == reference.alpha
    # the test block changes test predictions only (causal convolution)
    np.testing.assert_array_equal(changed.predict(features2)[:, :split.test[0]],
                                  reference.predict(features)[:, :split.test[0]])
    # the chosen alpha minimises the validation error ...
    assert reference.alpha == reference.alphas[np.argmin(reference.validation_mse)]
    # ... and the validation block decides it: unrelated validation BOLD -> strongest penalty
    bold3 = bold.copy()
    bold3[:, split.validation] = rng.normal(size=bold3[:, split.validation].shape)
    noisy = fit_ridge_baseline(features, bold3, split, tr_s=TR)
    assert noisy.alpha >= 100 * reference.alpha
    np.testing.assert_array_equal(noisy.regressor_mean, reference.regressor_mean)


def test_ridge_prediction_is_causal_and_checks_inputs():
    features, bold, _, split = _planted(seed=2, n_volumes=300)
    fit = fit_ridge_baseline(features, bold, split, tr_s=TR, alphas=[1.0, 10.0])
    base = fit.predict(features)
    changed = features.copy()
    changed[:, 150] += 3.0
    other = fit.predict(changed)
    np.testing.assert_array_equal(other[:, :150], base[:, :150])
    assert np.abs(other[:, 150:150 + HISTORY + 1] - base[:, 150:150 + HISTORY + 1]).max() > 0
    np.testing.assert_allclose(other[:, 150 + HISTORY + 1:], base[:, 150 + HISTORY + 1:])
    with pytest.raises(ValueError, match="volumes"):
        fit_ridge_baseline(features, bold[:, :-1], split, tr_s=TR)
    with pytest.raises(ValueError, match="positive"):
        fit_ridge_baseline(features, bold, split, tr_s=TR, alphas=[0.0, 1.0])
    with pytest.raises(ValueError, match="feature"):
        fit_ridge_baseline(features, bold, split, tr_s=TR, feature="power")
    with pytest.raises(ValueError, match="fitted on"):
        fit.predict(features[:3])


def test_compare_models_structure():
    data = simulate(seed=1, n_src=5, n_bold=4, n_volumes=160)
    features = wavelet_band_features(data["segments"])
    config = Config(**{**SMALL, "max_epochs": 1})
    truth = pd.DataFrame({"parcel": list("abcd"), "time_to_peak_s": data["true_peaks"]})
    details = {}
    table, predictions = compare_models(
        features, data["bold"], data["split"], data["src_xyz"], data["bold_xyz"], config,
        tr_s=2.0, names=list("abcd"), truth_hrf=truth, n_null=50, details=details)
    assert table["model"].tolist() == list(MODEL_NAMES)
    assert list(table.columns) == [
        "model", "median_pearson_r", "median_spearman_rho", "fraction_significant",
        "pooled_spearman", "median_ttp_abs_error_s", "n_parameters", "best_epoch",
        "fit_seconds"]
    assert set(predictions) == set(MODEL_NAMES)
    assert all(p.shape == data["bold"].shape and np.isfinite(p).all()
               for p in predictions.values())
    ridge = table.set_index("model").loc["ridge"]
    assert np.isfinite(ridge[["median_pearson_r", "median_spearman_rho",
                              "fraction_significant", "pooled_spearman"]].astype(float)).all()
    # the ridges use the canonical HRF: its error, as the fixed-HRF ablation's
    assert ridge["median_ttp_abs_error_s"] == pytest.approx(
        table.set_index("model").loc["fixed-hrf", "median_ttp_abs_error_s"])
    assert np.isfinite(table["median_ttp_abs_error_s"]).all()
    samba_rows = table[~table["model"].str.contains("ridge")]
    assert table["fraction_significant"].between(0, 1).all()
    # the ablations are different models: distinct parameter counts
    assert samba_rows["n_parameters"].nunique() == len(samba_rows)
    assert set(details["metrics"]) == set(MODEL_NAMES)
    # subset and without truth
    table, predictions = compare_models(
        features, data["bold"], data["split"], data["src_xyz"], data["bold_xyz"], config,
        tr_s=2.0, names=list("abcd"), models=["ridge"], n_null=0)
    assert table["model"].tolist() == ["ridge"]
    assert "median_ttp_abs_error_s" not in table.columns
    assert np.isnan(table["fraction_significant"].iloc[0])
    with pytest.raises(ValueError, match="unknown model"):
        compare_models(features, data["bold"], data["split"], data["src_xyz"],
                       data["bold_xyz"], config, tr_s=2.0, names=list("abcd"),
                       models=["lasso"])


def test_simulation_ceilings_known_answers():
    """White signal: the block ceiling equals the run ceiling's expectation sqrt(s/(1+s));
    a slow signal scores lower on a short block; cleaning that removes signal lowers the
    perfect model's score, and a perfect model on the noiseless BOLD itself scores 1."""
    rng = np.random.default_rng(0)
    snr = 16.0 / 9.0
    n_parcels, n_volumes = 400, 2000
    white = rng.normal(size=(n_parcels, n_volumes))
    noisy = white + rng.normal(size=white.shape) / np.sqrt(snr)
    block = np.arange(1000, 1300)
    out = simulation_ceilings(white, noisy, noisy, block)
    assert out["noise_ceiling_run"] == pytest.approx(np.sqrt(snr / (1 + snr)), abs=0.01)
    assert out["noise_ceiling_block"] == pytest.approx(0.8, abs=0.02)
    assert out["perfect_model_block"] == pytest.approx(out["noise_ceiling_block"])
    assert simulation_ceilings(white, noisy, white, block)["perfect_model_block"] == 1.0
    # a slow signal (AR(1), 0.98) of the same SNR: short blocks hold little of its variance
    slow = lfilter([1.0], [1.0, -0.98], rng.normal(size=(n_parcels, n_volumes)), axis=1)
    slow /= slow.std(axis=1, keepdims=True)
    noisy = slow + rng.normal(size=slow.shape) / np.sqrt(snr)
    out = simulation_ceilings(slow, noisy, noisy, np.arange(1000, 1040))
    assert out["noise_ceiling_run"] == pytest.approx(0.8, abs=0.03)
    assert out["noise_ceiling_block"] < out["noise_ceiling_run"] - 0.1
    # regressing out a chance-correlated slow regressor removes signal: lower than noisy
    drift = lfilter([1.0], [1.0, -0.98], rng.normal(size=n_volumes))[None]
    beta = (noisy @ drift.T) / (drift @ drift.T)
    cleaned = noisy - beta * drift
    out_cleaned = simulation_ceilings(slow, noisy, cleaned, np.arange(n_volumes))
    assert out_cleaned["perfect_model_block"] < out_cleaned["noise_ceiling_block"]
    with pytest.raises(ValueError, match="one shape"):
        simulation_ceilings(slow, noisy[:, 1:], cleaned, block)
    with pytest.raises(ValueError, match="at least 3"):
        simulation_ceilings(slow, noisy, cleaned, [1, 2])


def test_summarise_seeds_known_answers():
    """Means, SDs and paired differences over subjects, against numbers computed by hand."""
    scores = {"samba": [0.30, 0.40, 0.50], "ridge": [0.20, 0.45, 0.31],
              "no-graph": [0.10, 0.20, 0.30]}
    tables = [pd.DataFrame({"model": list(scores), "median_pearson_r":
                            [scores[m][i] for m in scores], "best_epoch": 1.0})
              for i in range(3)]
    out = summarise_seeds(tables).set_index("model")
    assert list(out.index) == ["samba", "ridge", "no-graph"]
    assert out.loc["samba", "mean"] == pytest.approx(0.4)
    assert out.loc["samba", "sd"] == pytest.approx(0.1)
    assert out.loc["samba", "sem"] == pytest.approx(0.1 / np.sqrt(3))
    # ridge - samba: -0.10, +0.05, -0.19 -> mean -0.08, SD 0.1212, one subject above
    diff = np.array([-0.10, 0.05, -0.19])
    assert out.loc["ridge", "diff_mean"] == pytest.approx(diff.mean())
    assert out.loc["ridge", "diff_sem"] == pytest.approx(diff.std(ddof=1) / np.sqrt(3))
    assert out.loc["ridge", "n_below"] == 2
    # a constant offset: paired SEM 0 although the scores themselves vary
    assert out.loc["no-graph", "diff_mean"] == pytest.approx(-0.2)
    assert out.loc["no-graph", "diff_sem"] == pytest.approx(0.0, abs=1e-12)
    assert out.loc["no-graph", "n_below"] == 3
    assert out.loc["samba", "diff_mean"] == 0 and out.loc["samba", "n_below"] == 0
    # model as the index works too; one subject has no spread
    single = summarise_seeds([tables[0].set_index("model")]).set_index("model")
    assert single.loc["ridge", "diff_mean"] == pytest.approx(-0.1)
    assert np.isnan(single.loc["ridge", "sem"]) and np.isnan(single.loc["ridge", "diff_sem"])
    with pytest.raises(ValueError, match="at least one"):
        summarise_seeds([])
    with pytest.raises(ValueError, match="lacks model"):
        summarise_seeds([tables[0], tables[1].iloc[:2]])
    with pytest.raises(ValueError, match="reference model"):
        summarise_seeds(tables, reference="oracle")
    with pytest.raises(ValueError, match="no column"):
        summarise_seeds(tables, column="pooled_spearman")


def test_graph_ridge_known_answers():
    """The ridge restricted to a graph: with every edge it is the dense ridge; with a sparse
    graph each BOLD parcel's coefficients are scikit-learn's Ridge on that parcel's columns
    of the standardised design (the same penalty), and zero elsewhere."""
    from sklearn.linear_model import Ridge

    features, bold, _, split = _planted(seed=4)
    n_src, n_bands, n_bold = features.shape[0], features.shape[2], bold.shape[0]
    every = np.array([(n, m) for n in range(n_src) for m in range(n_bold)]).T
    dense = fit_ridge_baseline(features, bold, split, tr_s=TR)
    full = fit_ridge_baseline(features, bold, split, tr_s=TR, edge_index=every)
    assert full.alpha == dense.alpha
    np.testing.assert_allclose(full.coefficients, dense.coefficients, atol=1e-10)
    np.testing.assert_allclose(full.validation_mse, dense.validation_mse, rtol=1e-10)

    rng = np.random.default_rng(0)
    edges = np.array([(n, m) for m in range(n_bold)
                      for n in rng.choice(n_src, 2, replace=False)]).T
    sparse = fit_ridge_baseline(features, bold, split, tr_s=TR, edge_index=edges)
    x = sparse.regressors(features)
    y = bold - sparse.intercept[:, None]
    for m in range(n_bold):
        columns = (np.sort(edges[0, edges[1] == m])[:, None] * n_bands
                   + np.arange(n_bands)).ravel()
        reference = Ridge(alpha=sparse.alpha, fit_intercept=False, solver="svd").fit(
            x[np.ix_(split.train, columns)], y[m, split.train]).coef_
        np.testing.assert_allclose(sparse.coefficients[columns, m], reference, atol=1e-8)
        outside = np.setdiff1d(np.arange(n_src * n_bands), columns)
        assert np.all(sparse.coefficients[outside, m] == 0)
    with pytest.raises(ValueError, match="no incoming edge"):
        fit_ridge_baseline(features, bold, split, tr_s=TR, edge_index=edges[:, edges[1] != 0])


def test_ridge_prior_known_answers():
    """Ridge toward a prior: a zero prior is the plain ridge; the largest penalty of the grid
    returns the prior (here another fit's coefficients, moved between standardisations by
    ``raw_coefficients``); and with few training volumes, the planted weights as the prior
    beat the ridge toward zero and are kept. Off-graph entries of a prior are dropped."""
    from samba_bids.model.baselines import DEFAULT_ALPHAS, PRIOR_ALPHAS

    features, bold, clean, split = _planted(seed=5, n_volumes=600)
    n_regressors, n_bold = features.shape[0] * features.shape[2], bold.shape[0]
    plain = fit_ridge_baseline(features, bold, split, tr_s=TR)
    zero = fit_ridge_baseline(features, bold, split, tr_s=TR, alphas=DEFAULT_ALPHAS,
                              prior=np.zeros((n_regressors, n_bold)))
    assert zero.alpha == plain.alpha
    np.testing.assert_allclose(zero.coefficients, plain.coefficients, atol=1e-12)
    # the prior from a fit on other volumes, kept as it is at the largest penalty
    other = types.SimpleNamespace(**{**vars(split), "train": split.train[: len(split.train) // 2]})
    first = fit_ridge_baseline(features, bold, other, tr_s=TR)
    kept = fit_ridge_baseline(features, bold, split, tr_s=TR, alphas=PRIOR_ALPHAS[-1:],
                              prior=first.raw_coefficients)
    np.testing.assert_allclose(kept.raw_coefficients, first.raw_coefficients, atol=1e-5)
    np.testing.assert_allclose(kept.prior, kept.coefficients, atol=1e-5)
    # 40 training volumes: the planted weights (raw units: clean was scaled to unit SD) as
    # the prior, against the plain ridge
    short = types.SimpleNamespace(**{**vars(split), "train": split.train[-40:]})
    log_power = features[..., 0]
    design = log_power.transpose(1, 0, 2).reshape(log_power.shape[1], -1)
    regressors = lfilter(canonical_kernel(TR), [1.0], design - design.mean(0), axis=0)
    truth = np.linalg.lstsq(regressors, clean.T, rcond=None)[0]  # exact: clean is linear
    names = [f"p{m}" for m in range(n_bold)]
    alone = fit_ridge_baseline(features, bold, short, tr_s=TR)
    shrunk = fit_ridge_baseline(features, bold, short, tr_s=TR, prior=truth)
    r_alone = parcel_metrics(alone.predict(features), bold, split.test, names)["pearson_r"]
    r_prior = parcel_metrics(shrunk.predict(features), bold, split.test, names)["pearson_r"]
    assert r_prior.median() > r_alone.median() + 0.05, (r_prior.median(), r_alone.median())
    assert shrunk.alpha > alone.alpha  # the validation block says: stay near the truth
    # off the graph, a prior's entries are dropped
    edges = np.array([(n, m) for m in range(n_bold) for n in (m % features.shape[0],)]).T
    graph = fit_ridge_baseline(features, bold, short, tr_s=TR, edge_index=edges, prior=truth)
    on = np.zeros((features.shape[0], n_bold), bool)
    on[edges[0], edges[1]] = True
    assert np.all(graph.coefficients[~np.repeat(on, features.shape[2], axis=0)] == 0)
    with pytest.raises(ValueError, match="prior must be"):
        fit_ridge_baseline(features, bold, split, tr_s=TR, prior=truth[:-1])
