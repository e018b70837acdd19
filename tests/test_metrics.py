"""Per-parcel metrics against scipy.stats on known inputs."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from samba_bids.metrics import group_parcel_summary, parcel_metrics, summarise


def _signals():
    rng = np.random.default_rng(0)
    observed = rng.normal(size=(4, 60))
    predicted = np.stack([
        observed[0],                      # perfect
        -observed[1],                     # negated
        rng.normal(size=60),              # unrelated
        np.exp(observed[3]),              # monotone, non-linear: rho 1, r < 1
    ])
    return predicted, observed


def test_parcel_metrics_known_answers_and_scipy():
    predicted, observed = _signals()
    volumes = np.arange(10, 50)
    df = parcel_metrics(predicted, observed, volumes, ["p0", "p1", "p2", "p3"])
    assert list(df.columns) == ["parcel", "pearson_r", "spearman_rho", "n_volumes"]
    assert df["parcel"].tolist() == ["p0", "p1", "p2", "p3"]
    assert (df["n_volumes"] == 40).all()
    assert df.loc[0, "pearson_r"] == pytest.approx(1.0)
    assert df.loc[0, "spearman_rho"] == pytest.approx(1.0)
    assert df.loc[1, "pearson_r"] == pytest.approx(-1.0)
    assert df.loc[1, "spearman_rho"] == pytest.approx(-1.0)
    assert df.loc[3, "spearman_rho"] == pytest.approx(1.0)
    assert df.loc[3, "pearson_r"] < 0.95
    for m in range(4):
        r = stats.pearsonr(predicted[m, volumes], observed[m, volumes])[0]
        rho = stats.spearmanr(predicted[m, volumes], observed[m, volumes])[0]
        assert df.loc[m, "pearson_r"] == pytest.approx(r, abs=1e-12)
        assert df.loc[m, "spearman_rho"] == pytest.approx(rho, abs=1e-12)
    assert abs(df.loc[2, "pearson_r"]) < 0.4  # unrelated series: near zero


def test_parcel_metrics_uses_only_given_volumes_and_ties():
    observed = np.tile(np.arange(20.0), (2, 1))
    predicted = observed.copy()
    predicted[:, 15:] = -100.0  # outside the scored volumes
    predicted[1, :4] = 0.0  # ties, as scipy averages them
    df = parcel_metrics(predicted, observed, np.arange(0, 15), ["a", "b"])
    assert df.loc[0, "pearson_r"] == pytest.approx(1.0)
    rho = stats.spearmanr(predicted[1, :15], observed[1, :15])[0]
    assert df.loc[1, "spearman_rho"] == pytest.approx(rho)


def test_constant_series_gives_nan_and_errors():
    observed = np.random.default_rng(1).normal(size=(2, 10))
    predicted = observed.copy()
    predicted[1] = 3.0
    df = parcel_metrics(predicted, observed, np.arange(10), ["a", "b"])
    assert np.isnan(df.loc[1, "pearson_r"]) and np.isnan(df.loc[1, "spearman_rho"])
    with pytest.raises(ValueError, match="names"):
        parcel_metrics(predicted, observed, np.arange(10), ["a"])
    with pytest.raises(ValueError, match="at least 3"):
        parcel_metrics(predicted, observed, [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="volume indices"):
        parcel_metrics(predicted, observed, [0, 1, 10], ["a", "b"])
    summary = summarise(df)
    assert summary["n_parcels"] == 2 and summary["n_parcels_nan"] == 1
    assert summary["median_pearson_r"] == pytest.approx(1.0)


def test_summarise():
    predicted, observed = _signals()
    df = parcel_metrics(predicted, observed, np.arange(60), list("abcd"))
    summary = summarise(df)
    r = df["pearson_r"].to_numpy()
    assert summary["median_pearson_r"] == pytest.approx(np.median(r))
    assert summary["mean_pearson_r"] == pytest.approx(np.mean(r))
    assert summary["q25_pearson_r"] == pytest.approx(np.percentile(r, 25))
    assert summary["min_pearson_r"] == pytest.approx(-1.0)
    assert summary["fraction_positive_pearson_r"] == pytest.approx(np.mean(r > 0))
    assert summary["median_spearman_rho"] == pytest.approx(np.median(df["spearman_rho"]))
    assert all(isinstance(v, (int, float)) for v in summary.values())


# --- significance, pooled Spearman, HRF recovery ----------------------------------------
def _ar1(rng, shape, phi=0.6):
    out = rng.normal(size=shape)
    for t in range(1, shape[-1]):
        out[..., t] += phi * out[..., t - 1]
    return out


@pytest.mark.parametrize("length", [64, 65])
def test_phase_randomize_keeps_amplitude_spectrum_and_destroys_correlation(length):
    from samba_bids.metrics import phase_randomize

    x = _ar1(np.random.default_rng(0), (3, length))
    surrogates = phase_randomize(x, 400, np.random.default_rng(1))
    assert surrogates.shape == (400, 3, length) and np.isrealobj(surrogates)
    np.testing.assert_allclose(np.abs(np.fft.rfft(surrogates, axis=-1)),
                               np.broadcast_to(np.abs(np.fft.rfft(x, axis=-1)),
                                               (400, 3, length // 2 + 1)), atol=1e-9)
    np.testing.assert_allclose(surrogates.mean(-1), np.broadcast_to(x.mean(-1), (400, 3)))
    r = np.array([[np.corrcoef(s[m], x[m])[0, 1] for m in range(3)] for s in surrogates])
    assert np.abs(r.mean(axis=0)).max() < 0.05  # no correlation left on average
    again = phase_randomize(x, 400, np.random.default_rng(1))
    np.testing.assert_array_equal(again, surrogates)  # seeded


def test_null_pvalues_uniform_for_noise_and_tiny_for_true_relation():
    from samba_bids.metrics import null_pvalues

    rng = np.random.default_rng(2)
    n_parcels, n_volumes, n_null = 200, 80, 400
    predicted = _ar1(rng, (n_parcels, n_volumes))
    observed = _ar1(rng, (n_parcels, n_volumes))  # independent, autocorrelated
    p = null_pvalues(predicted, observed, np.arange(n_volumes), n_null=n_null, seed=0)
    assert p.shape == (n_parcels,) and np.all((p > 0) & (p <= 1))
    # binomial(200, 0.05): mean 10, SD 3.1; 3.5 SD either side
    assert 0 <= np.sum(p < 0.05) <= 21
    assert abs(np.mean(p < 0.5) - 0.5) < 0.13
    strong = predicted + 0.3 * rng.normal(size=predicted.shape)
    p_strong = null_pvalues(predicted, strong, np.arange(n_volumes), n_null=n_null, seed=0)
    np.testing.assert_allclose(p_strong, 1.0 / (1 + n_null))
    # chunking does not change the result
    np.testing.assert_array_equal(
        null_pvalues(predicted, observed, np.arange(n_volumes), n_null=n_null, seed=0,
                     chunk_elements=1000), p)


def test_fdr_matches_scipy_and_parcel_metrics_columns():
    from samba_bids.metrics import fdr_bh

    p = np.random.default_rng(3).uniform(size=50) ** 3
    np.testing.assert_allclose(fdr_bh(p), stats.false_discovery_control(p, method="bh"))
    with_nan = np.append(p, np.nan)
    adjusted = fdr_bh(with_nan)
    assert np.isnan(adjusted[-1])
    np.testing.assert_allclose(adjusted[:-1], stats.false_discovery_control(p, method="bh"))

    predicted, observed = _signals()
    df = parcel_metrics(predicted, observed, np.arange(60), list("abcd"), n_null=200, seed=1)
    assert list(df.columns) == ["parcel", "pearson_r", "spearman_rho", "n_volumes", "p_value",
                                "p_fdr", "significant"]
    np.testing.assert_allclose(df["p_fdr"], stats.false_discovery_control(df["p_value"]))
    assert df["significant"].tolist() == [True, True, False, True]
    summary = summarise(df)
    assert summary["fraction_significant"] == pytest.approx(0.75)
    assert summary["n_significant"] == 3
    assert summary["median_pearson_r"] == pytest.approx(np.median(df["pearson_r"]))
    assert "fraction_significant" not in summarise(df.iloc[:, :4])


def test_pooled_spearman_against_scipy():
    from samba_bids.metrics import pooled_spearman

    predicted = np.array([[1.0, 2.0, 3.0, 9.0, 0.0], [10.0, 12.0, 11.0, 14.0, 5.0]])
    observed = np.array([[0.5, 1.0, 1.0, 2.0, 7.0], [3.0, 4.0, 6.0, 5.0, 1.0]])
    volumes = [0, 1, 2, 3]
    expected = stats.spearmanr(predicted[:, volumes].ravel(), observed[:, volumes].ravel())[0]
    assert pooled_spearman(predicted, observed, volumes) == pytest.approx(expected)
    z = stats.zscore(predicted[:, volumes], axis=1), stats.zscore(observed[:, volumes], axis=1)
    expected_z = stats.spearmanr(z[0].ravel(), z[1].ravel())[0]
    assert pooled_spearman(predicted, observed, volumes, zscore=True) == pytest.approx(
        expected_z)


def test_hrf_recovery_by_name_and_position():
    from samba_bids.metrics import hrf_recovery, hrf_recovery_summary

    learned = pd.DataFrame({"parcel": ["a", "b", "c"], "time_to_peak_s": [5.0, 6.0, 4.0],
                            "onset_s": 0.0})
    truth = pd.DataFrame({"parcel": ["c", "a", "b"], "time_to_peak_s": [4.5, 5.0, 7.0]})
    frame = hrf_recovery(learned, truth)
    assert frame["parcel"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(frame["true_time_to_peak_s"], [5.0, 7.0, 4.5])
    np.testing.assert_allclose(frame["abs_error_s"], [0.0, 1.0, 0.5])
    assert frame.attrs["median_abs_error_s"] == pytest.approx(0.5)
    summary = hrf_recovery_summary(frame)
    assert summary["median_abs_error_s"] == pytest.approx(0.5)
    assert summary["spearman_time_to_peak"] == pytest.approx(1.0)
    by_position = hrf_recovery(learned, truth[["time_to_peak_s"]])
    np.testing.assert_allclose(by_position["abs_error_s"], [0.5, 1.0, 3.0])
    with pytest.raises(ValueError, match="no planted HRF"):
        hrf_recovery(learned, truth.iloc[:2])


def test_group_parcel_summary_averages_runs_then_participants():
    """sub-01 has two runs (averaged first, NaN ignored), sub-02 one run in another row order."""
    run1 = pd.DataFrame({"parcel": ["a", "b"], "pearson_r": [0.1, 0.2]})
    run2 = pd.DataFrame({"parcel": ["a", "b"], "pearson_r": [0.3, np.nan]})
    other = pd.DataFrame({"parcel": ["b", "a"], "pearson_r": [0.6, 0.4]})
    out = group_parcel_summary([run1, run2, other], "pearson_r",
                               participants=["01", "01", "02"])
    assert list(out["parcel"]) == ["a", "b"]
    np.testing.assert_allclose(out["mean_pearson_r"], [np.mean([0.2, 0.4]), np.mean([0.2, 0.6])])
    np.testing.assert_allclose(out["sd_pearson_r"], [np.std([0.2, 0.4], ddof=1),
                                                     np.std([0.2, 0.6], ddof=1)])
    assert list(out["n_pearson_r"]) == [2, 2]
    single = group_parcel_summary([run1], "pearson_r")
    assert single["sd_pearson_r"].isna().all() and list(single["n_pearson_r"]) == [1, 1]
    with pytest.raises(ValueError, match="lack"):
        group_parcel_summary([run1.drop(columns="pearson_r")], "pearson_r")


def test_pearson_r_is_scipys_and_handles_gaps():
    """The package's one Pearson r equals scipy.stats.pearsonr, row by row; with
    ``omit_nan`` it leaves out non-finite pairs like pearsonr on the finite ones."""
    from scipy import stats

    from samba_bids.metrics import pearson_r

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 5, 40))
    b[1] += 2 * a[1]
    expected = [stats.pearsonr(x, y)[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(pearson_r(a, b), expected, rtol=1e-12)
    assert np.isnan(pearson_r(np.ones(10), rng.normal(size=10)))  # constant series
    a[2, :7] = np.nan
    b[3, -4:] = np.inf
    got = pearson_r(a, b, omit_nan=True)
    for row in (2, 3):
        keep = np.isfinite(a[row]) & np.isfinite(b[row])
        assert got[row] == pytest.approx(stats.pearsonr(a[row, keep], b[row, keep])[0])
    with np.errstate(invalid="ignore"):  # inf - inf in the centring of row 3
        assert np.isnan(pearson_r(a, b)[2])  # without omit_nan a gap gives NaN
    short = pearson_r(np.array([1.0, 2.0, np.nan]), np.array([2.0, 1.0, 3.0]), omit_nan=True)
    assert np.isnan(short)  # fewer than 3 finite pairs
