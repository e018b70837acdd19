"""Per-parcel metrics against scipy.stats on known inputs."""

import numpy as np
import pytest
from scipy import stats

from samba_bids.metrics import parcel_metrics, summarise


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
