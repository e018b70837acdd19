"""Training: planted-HRF recovery, training-only statistics, windows, prediction, seeds."""

import math
import types

import numpy as np
import pytest
import torch
from scipy import stats

from samba_bids.config import Config
from samba_bids.errors import UsageError
from samba_bids.metrics import parcel_metrics
from samba_bids.model.wavelet import wavelet_band_features
from samba_bids.training import (
    evaluate_loss,
    fit_samba,
    make_windows,
    predict_run,
    resolve_device,
)


def planted_hrf(t_s, time_to_peak_s):
    """Double gamma (SPM undershoot) whose response gamma peaks at ``time_to_peak_s``."""
    return stats.gamma.pdf(t_s, time_to_peak_s + 1.0) - stats.gamma.pdf(t_s, 16.0) / 6.0


def simulate(seed=0, n_src=8, n_bold=6, n_volumes=400, tr_s=2.0, sfreq_hz=100.0, noise=0.3):
    """Noise segments whose band-power envelope drives BOLD through planted HRFs.

    Each source parcel's segment is white noise scaled by ``exp(env / 2)``, ``env`` an AR(1)
    series at the TR rate; each BOLD parcel is a signed mix of two sources' ``env`` convolved
    (causally, zero history) with its own double-gamma HRF, time to peak 4..7 s, plus noise.
    """
    rng = np.random.default_rng(seed)
    n_samples = int(round(tr_s * sfreq_hz))
    white = rng.normal(size=(n_src, n_volumes + 50))
    env = np.zeros_like(white)
    for t in range(1, white.shape[1]):
        env[:, t] = 0.3 * env[:, t - 1] + white[:, t]
    env = env[:, 50:]
    env = (env - env.mean(1, keepdims=True)) / env.std(1, keepdims=True)
    segments = np.exp(0.5 * env)[..., None] * rng.normal(size=(n_src, n_volumes, n_samples))
    mixing = np.zeros((n_bold, n_src))
    for m in range(n_bold):
        chosen = rng.choice(n_src, 2, replace=False)
        mixing[m, chosen] = rng.uniform(0.7, 1.0, 2) * rng.choice([-1, 1], 2)
    drive = mixing @ env
    peaks = np.linspace(4.0, 7.0, n_bold)
    history = int(math.ceil(32.0 / tr_s - 1e-9))
    taps = np.arange(history + 1) * tr_s
    bold = np.zeros((n_bold, n_volumes))
    for m in range(n_bold):
        kernel = planted_hrf(taps, peaks[m])
        bold[m] = np.convolve(drive[m], kernel / kernel.sum())[:n_volumes]
    bold += noise * bold.std(1, keepdims=True) * rng.normal(size=bold.shape)
    usable = n_volumes - 2 * history
    n_train, n_val = int(usable * 0.7), int(usable * 0.15)
    split = types.SimpleNamespace(
        train=np.arange(n_train),
        validation=np.arange(n_train + history, n_train + history + n_val),
        test=np.arange(n_train + n_val + 2 * history, n_volumes),
        history=history, tr_s=tr_s)
    train = bold[:, split.train]
    bold = (bold - train.mean(1, keepdims=True)) / train.std(1, keepdims=True)
    fine = np.arange(0, 32, 0.01)
    true_peaks = np.array([fine[np.argmax(planted_hrf(fine, p))] for p in peaks])
    return dict(segments=segments, bold=bold, split=split, true_peaks=true_peaks,
                src_xyz=rng.normal(size=(n_src, 3)) * 40,
                bold_xyz=rng.normal(size=(n_bold, 3)) * 40)


SMALL = dict(hidden_size=8, gat_heads=2, k_spatial=2, k_functional=2, dropout=0.1,
             max_epochs=2, patience=5, batch_size=8, learning_rate=3e-3, window_trs=5,
             device="cpu", mse_weight=0.1)


@pytest.fixture(scope="module")
def small_data():
    data = simulate(seed=1, n_src=5, n_bold=4, n_volumes=160)
    data["features"] = wavelet_band_features(data["segments"])
    return data


def _fit(data, features=None, bold=None, **overrides):
    config = Config(**{**SMALL, **overrides})
    return fit_samba(data["features"] if features is None else features,
                     data["bold"] if bold is None else bold, data["split"], data["src_xyz"],
                     data["bold_xyz"], config)


def test_planted_hrf_recovery():
    data = simulate(seed=0, tr_s=2.0)
    features = wavelet_band_features(data["segments"], "db5", 3)
    config = Config(hidden_size=16, gat_heads=2, k_spatial=3, k_functional=3, dropout=0.0,
                    max_epochs=40, patience=10, batch_size=8, learning_rate=3e-3,
                    window_trs=10, device="cpu", mse_weight=0.1, seed=0)
    fit = fit_samba(features, data["bold"], data["split"], data["src_xyz"], data["bold_xyz"],
                    config)
    split = data["split"]
    predicted = predict_run(fit.model, features, history=split.history, window_trs=10)
    metrics = parcel_metrics(predicted, data["bold"], split.test, list("abcdef"))
    learned = fit.model.hrf.time_to_peak()
    true = data["true_peaks"]
    canonical_error = np.abs(4.99 - true).mean()
    learned_error = np.abs(learned - true).mean()
    print(f"\nplanted-HRF recovery: median test r {metrics['pearson_r'].median():.3f}, "
          f"time to peak true {np.round(true, 2)}, learned {np.round(learned, 2)}, mean |error| "
          f"{learned_error:.2f} s vs {canonical_error:.2f} s at the canonical start; best epoch "
          f"{fit.best_epoch} of {len(fit.history)}")
    assert metrics["pearson_r"].median() > 0.7
    assert learned_error < 0.7 * canonical_error
    assert stats.spearmanr(learned, true)[0] > 0.7  # the order of the regions is recovered
    # the HRF stage (HRFs, gains, offsets on the ridge-initialised linear path) beat its
    # canonical start (epoch 0) on the validation block
    assert fit.history.attrs["hrf_stage"]["best_epoch"] >= 1


def test_statistics_and_graphs_use_training_volumes_only(small_data):
    split = small_data["split"]
    reference = _fit(small_data)
    rng = np.random.default_rng(5)
    features = small_data["features"].copy()
    bold = small_data["bold"].copy()
    features[:, split.test] = rng.normal(size=features[:, split.test].shape) * 10
    bold[:, split.test] = rng.normal(size=bold[:, split.test].shape) * 10
    # test-block data change nothing at all
    changed = _fit(small_data, features=features, bold=bold)
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(changed.model.state_dict()[key], value, atol=0, rtol=0)
    assert reference.history[["train_loss", "val_loss"]].equals(
        changed.history[["train_loss", "val_loss"]])
    # validation-block data change neither the scaler nor the graphs
    features[:, split.validation] += 3.0
    bold[:, split.validation] = rng.normal(size=bold[:, split.validation].shape)
    changed = _fit(small_data, features=features, bold=bold)
    for name in ("feature_mean", "feature_std"):
        torch.testing.assert_close(getattr(changed.model, name), getattr(reference.model, name),
                                   atol=0, rtol=0)
    for name in ("bipartite", "bold"):
        np.testing.assert_array_equal(changed.graphs[name], reference.graphs[name])
    # ... while training-block data do
    features[:, split.train[:20]] += 1.0
    changed = _fit(small_data, features=features, bold=bold)
    assert not torch.equal(changed.model.feature_mean, reference.model.feature_mean)


def test_fit_result_and_best_epoch_weights(small_data):
    # the graph path alone: the best of the trained epochs (no ridge-initialised start)
    fit = _fit(small_data, max_epochs=4, patience=10, linear_path=False)
    assert list(fit.history.columns[:3]) == ["epoch", "train_loss", "val_loss"]
    assert fit.history["epoch"].tolist() == [1, 2, 3, 4]
    assert fit.best_epoch == int(fit.history["val_loss"].idxmin()) + 1
    assert fit.device == "cpu" and fit.n_parameters == fit.model.n_parameters() > 0
    assert not fit.model.training
    assert next(fit.model.parameters()).device.type == "cpu"
    assert fit.graphs["bipartite"].shape[0] == 2 and fit.graphs["bold"].shape[0] == 2
    # the returned weights are those of the best validation epoch
    split = small_data["split"]
    windows = make_windows(split.validation, split.history, fit.window_trs, tile=True)
    x_all = torch.as_tensor(small_data["features"], dtype=torch.float32)
    y_all = torch.as_tensor(small_data["bold"], dtype=torch.float32)
    loss = evaluate_loss(fit.model, x_all, y_all, windows, split.history, mse_weight=0.1,
                         batch_size=8)
    assert loss == pytest.approx(fit.history["val_loss"].iloc[fit.best_epoch - 1], rel=1e-5)


def test_early_stopping(small_data):
    fit = _fit(small_data, max_epochs=30, patience=1, learning_rate=0.5, linear_path=False)
    n_epochs = len(fit.history)
    assert n_epochs < 30
    assert n_epochs == fit.best_epoch + 1


def test_early_stopping_on_validation_block_r(small_data):
    """``early_stopping="validation-r"`` keeps the epoch whose prediction of the validation
    block correlates best with it (median over parcels); training itself is unchanged."""
    by_loss = _fit(small_data, max_epochs=5, patience=10, linear_path=False)
    fit = _fit(small_data, max_epochs=5, patience=10, early_stopping="validation-r",
               linear_path=False)
    np.testing.assert_allclose(fit.history["train_loss"], by_loss.history["train_loss"],
                               rtol=1e-6)
    assert fit.best_epoch == int(fit.history["val_score"].idxmax()) + 1
    split = small_data["split"]
    predicted = predict_run(fit.model, small_data["features"], history=split.history,
                            window_trs=fit.window_trs)
    r = parcel_metrics(predicted, small_data["bold"], split.validation,
                       [str(m) for m in range(small_data["bold"].shape[0])])["pearson_r"]
    assert float(r.median()) == pytest.approx(fit.history["val_score"].max(), abs=1e-5)
    with pytest.raises(UsageError, match="early_stopping must be one of"):
        Config(early_stopping="test-r")


def test_same_seed_same_result(small_data):
    first, second = _fit(small_data, seed=3), _fit(small_data, seed=3)
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[key], value, atol=0, rtol=0)
    assert first.history[["train_loss", "val_loss"]].equals(
        second.history[["train_loss", "val_loss"]])
    other = _fit(small_data, seed=4)
    assert not first.history["train_loss"].equals(other.history["train_loss"])


def test_make_windows():
    block = np.arange(100, 140)
    windows = make_windows(block, 6, 5)
    assert windows.shape == (40 - 5 + 1, 11)
    assert np.all(np.diff(windows, axis=1) == 1)
    targets = windows[:, 6:]
    assert targets.min() == 100 and targets.max() == 139  # targets never leave the block
    np.testing.assert_array_equal(windows[:, 0], np.arange(94, 130))  # history reaches back
    np.testing.assert_array_equal(targets[:, 0], np.arange(100, 136))  # stride 1

    tiles = make_windows(block, 6, 5, tile=True)
    targets = tiles[:, 6:]
    assert set(targets.ravel()) == set(range(100, 140))  # every volume of the block
    assert np.all(np.diff(targets[:-1].ravel()) == 1)  # non-overlapping before the last
    assert targets[-1, -1] == 139  # the last window ends at the block end
    exact = make_windows(np.arange(20), 6, 5, tile=True)
    assert len(exact) == 4 and exact[-1, -1] == 19
    assert exact[0, 0] == -6  # before the recording start: negative (absent) segments

    with pytest.raises(ValueError, match="cannot hold"):
        make_windows(np.arange(4), 6, 5)
    with pytest.raises(ValueError, match="contiguous"):
        make_windows(np.array([1, 2, 4, 5]), 1, 1)


def test_predict_run_shape_and_causality(small_data):
    fit = _fit(small_data)
    features = small_data["features"]
    history = small_data["split"].history
    predicted = predict_run(fit.model, features, history=history, window_trs=7)
    n_volumes = features.shape[1]
    assert predicted.shape == (small_data["bold"].shape[0], n_volumes)
    assert np.isfinite(predicted).all()
    # each volume is predicted from the electrophysiology at and before it only
    for volume in (0, 37, n_volumes - 3):
        changed = features.copy()
        changed[:, volume] += 2.0
        other = predict_run(fit.model, changed, history=history, window_trs=7)
        np.testing.assert_allclose(other[:, :volume], predicted[:, :volume], atol=1e-5)
        assert np.abs(other[:, volume + 1:] - predicted[:, volume + 1:]).max() > 1e-4
    # a run shorter than one window still gets a prediction per volume
    short = predict_run(fit.model, features[:, :4], history=history, window_trs=7)
    assert short.shape == (predicted.shape[0], 4) and np.isfinite(short).all()


def test_fit_checks_inputs(small_data):
    config = Config(**SMALL)
    split = small_data["split"]
    with pytest.raises(ValueError, match="volumes"):
        fit_samba(small_data["features"], small_data["bold"][:, :-1], split,
                  small_data["src_xyz"], small_data["bold_xyz"], config)
    no_tr = types.SimpleNamespace(train=split.train, validation=split.validation,
                                  test=split.test, history=split.history)
    with pytest.raises(ValueError, match="repetition time"):
        fit_samba(small_data["features"], small_data["bold"], no_tr, small_data["src_xyz"],
                  small_data["bold_xyz"], config)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-ish")


def test_fit_samba_ablations(small_data):
    from samba_bids.model.hrf import SPM_CANONICAL

    fixed = _fit(small_data, learn_hrf=False, max_epochs=2)
    assert fixed.model.hparams["learn_hrf"] is False
    torch.testing.assert_close(fixed.model.hrf.params(),
                               torch.tensor(SPM_CANONICAL).expand(4, 6), atol=1e-5, rtol=0)
    no_graph = _fit(small_data, use_graph=False, use_wavelet_attention=False, max_epochs=2)
    assert no_graph.model.hparams["use_graph"] is False
    assert no_graph.model.hparams["use_wavelet_attention"] is False
    assert not hasattr(no_graph.model, "bipartite")
    predicted = predict_run(no_graph.model, small_data["features"],
                            history=small_data["split"].history, window_trs=5)
    assert np.isfinite(predicted).all()
