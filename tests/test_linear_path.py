"""The standard model inside SAMBA (issue 15): the ridge-initialised linear path.

Known answers: at initialisation the model predicts what the closed-form canonical-HRF ridge
predicts; training keeps that start (epoch 0) unless an epoch beats it on the validation
block; the linear-path-only ablation has exactly the ridge's weights plus HRFs, gain and
offset; checkpoints keep the path, and those written before it existed load without it.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from samba_bids.config import Config
from samba_bids.model.baselines import fit_ridge_baseline
from samba_bids.model.samba import SAMBA
from samba_bids.model.wavelet import wavelet_band_features
from samba_bids.training import fit_samba, predict_run

from .test_training import SMALL, simulate


@pytest.fixture(scope="module")
def data():
    sim = simulate(seed=3)
    sim["features"] = wavelet_band_features(sim["segments"], level=3)
    return sim


def _fit(data, **settings):
    config = Config(**{**SMALL, **settings})
    return fit_samba(data["features"], data["bold"], data["split"], data["src_xyz"],
                     data["bold_xyz"], config, tr_s=2.0)


def _ridge(data, fit):
    """The graph ridge: the ridge restricted to the model's bipartite graph."""
    return fit_ridge_baseline(data["features"], data["bold"], data["split"], tr_s=2.0,
                              edge_index=fit.graphs["bipartite"])


def test_initial_model_is_the_ridge(data):
    """With the linear path set from the ridge (canonical HRFs, zero readout), every volume's
    prediction is the ridge's, to float32 precision; the readout starts at zero."""
    fit = _fit(data, max_epochs=1, learning_rate=1e-12,
               hrf_learning_rate=1e-12)  # no step moves the weights
    ridge = _ridge(data, fit)
    predicted = predict_run(fit.model, data["features"], history=data["split"].history,
                            window_trs=5)
    expected = ridge.predict(data["features"])
    assert np.abs(predicted - expected).max() < 1e-4 * np.abs(expected).max()
    model = SAMBA.from_checkpoint(fit.model.to_checkpoint())
    assert model.hparams["linear_path"] and model.hparams["nonlinear_path"]
    assert torch.equal(model.linear.weight, fit.model.linear.weight)


def test_initialisation_kept_when_training_does_not_beat_it(data):
    """A learning rate that wrecks the weights in one epoch: early stopping keeps epoch 0,
    so the fitted model is the ridge; the history holds the trained epoch only."""
    fit = _fit(data, max_epochs=2, learning_rate=5.0, hrf_learning_rate=5.0)
    assert fit.best_epoch == 0
    assert len(fit.history) == 2 and fit.history["epoch"].tolist() == [1, 2]
    predicted = predict_run(fit.model, data["features"], history=data["split"].history,
                            window_trs=5)
    expected = _ridge(data, fit).predict(data["features"])
    assert np.abs(predicted - expected).max() < 1e-4 * np.abs(expected).max()


def test_linear_path_only_ablation(data):
    """The ablation holds the graph ridge's weights (the bands of each BOLD parcel's source
    parcels in the bipartite graph), the HRFs, gain and offset, nothing else; it has no
    wavelet attention (its attention summary is NaN). Without the graph it is dense."""
    fit = _fit(data, nonlinear_path=False, max_epochs=3)
    n_src, _, n_bands, _ = data["features"].shape
    n_bold = data["bold"].shape[0]
    n_edges = len({tuple(edge) for edge in fit.graphs["bipartite"].T})
    assert 0 < n_edges < n_src * n_bold
    assert fit.n_parameters == n_edges * n_bands + n_bold * 6 + 2 * n_bold
    dense = _fit(data, nonlinear_path=False, use_graph=False, max_epochs=1)
    assert dense.n_parameters == n_bold * n_src * n_bands + n_bold * 6 + 2 * n_bold
    assert not hasattr(fit.model, "wavelet_attention")
    _, attention = predict_run(fit.model, data["features"], history=data["split"].history,
                               window_trs=5, return_attention=True)
    assert attention.shape == (n_src, n_bands) and np.isnan(attention).all()


def test_old_checkpoints_load_without_the_linear_path(data):
    """A checkpoint written before the linear path existed (no ``linear_path`` in its
    hyperparameters, no ``linear.*`` weights) loads as the graph path alone and predicts
    exactly as the model that wrote it."""
    fit = _fit(data, linear_path=False, max_epochs=1)
    checkpoint = fit.model.to_checkpoint()
    for key in ("linear_path", "nonlinear_path", "linear_feature_index"):
        checkpoint["hparams"].pop(key)
    model = SAMBA.from_checkpoint(checkpoint)
    assert model.linear is None and model.hparams["nonlinear_path"]
    x = torch.as_tensor(data["features"][None, :, :20], dtype=torch.float32)
    assert torch.allclose(model(x), fit.model(x))


def test_init_linear_path_refuses_a_mismatched_ridge(data):
    """A ridge fitted on other training volumes (another standardisation) or at another TR
    is refused with a message that says why."""
    fit = _fit(data, max_epochs=1, learning_rate=1e-12, hrf_learning_rate=1e-12)
    dense = fit_ridge_baseline(data["features"], data["bold"], data["split"], tr_s=2.0)
    with pytest.raises(ValueError, match="outside the linear path's graph"):
        fit.model.init_linear_path(dense)
    other = dataclasses.replace(data["split"], train=data["split"].train[:100]) \
        if dataclasses.is_dataclass(data["split"]) else type(data["split"])(
            **{**vars(data["split"]), "train": data["split"].train[:100]})
    ridge = fit_ridge_baseline(data["features"], data["bold"], other, tr_s=2.0,
                               edge_index=fit.graphs["bipartite"])
    with pytest.raises(ValueError, match="standardisation"):
        fit.model.init_linear_path(ridge)
    ridge = fit_ridge_baseline(data["features"], data["bold"], data["split"], tr_s=1.0,
                               edge_index=fit.graphs["bipartite"])
    with pytest.raises(ValueError, match="HRF"):
        fit.model.init_linear_path(ridge)


def test_start_restored_unless_training_clearly_beats_it(data):
    """The guard against early stopping's winner's curse: a trained model no better than the
    start gives way to it (epoch 0); one whose validation r is clearly higher is kept."""
    import copy

    import samba_bids.training.fit as fit_module

    config = Config(**{**SMALL, "max_epochs": 1})
    setup = fit_module._setup_fit(data["features"], data["bold"], data["split"],
                                  data["src_xyz"], data["bold_xyz"], config, 2.0)
    model = fit_module._build_samba(setup, config, data["split"])
    ridge_state = copy.deepcopy(model.state_dict())
    trained = (pd.DataFrame({"epoch": [1, 2, 3]}), 3, 0.5)
    trained[0].attrs["initial_val_loss"] = 0.6
    # the same weights as the start: no gain, the start is restored
    history, best_epoch, loss = fit_module._keep_start_unless_clearly_better(
        model, ridge_state, trained, setup, data["split"])
    assert best_epoch == 0 and loss == 0.6 and history.attrs["validation_r_gain"] == 0
    # a start that predicts from noise against the ridge: the ridge (trained) is kept
    noise_state = copy.deepcopy(ridge_state)
    generator = torch.Generator().manual_seed(0)
    noise_state["linear.weight"] = torch.randn(noise_state["linear.weight"].shape,
                                               generator=generator)
    history, best_epoch, _ = fit_module._keep_start_unless_clearly_better(
        model, noise_state, trained, setup, data["split"])
    assert best_epoch == 3
    assert history.attrs["validation_r_gain"] > 2 * history.attrs["validation_r_gain_se"]
    assert torch.equal(model.linear.weight, ridge_state["linear.weight"])


def test_linear_path_coefficients_invert_the_ridge_start(data):
    """Before training, the linear path read back in raw band-power units is the graph
    ridge's ``raw_coefficients``: what a fine-tuned model's ridge is shrunk toward."""
    fit = _fit(data, max_epochs=1, learning_rate=1e-12, hrf_learning_rate=1e-12)
    ridge = _ridge(data, fit)
    np.testing.assert_allclose(fit.model.linear_path_coefficients(), ridge.raw_coefficients,
                               rtol=1e-4, atol=1e-6 * np.abs(ridge.raw_coefficients).max())


def test_fine_tuning_starts_from_the_pretrained_model(data):
    """``fit_samba(..., init=model)`` on another participant's data: the graphs and the graph
    path are the pretrained model's, the ridge start is shrunk toward its linear path, the
    standardisation is the new data's; data of another shape are refused."""
    pretrained = _fit(data, max_epochs=2).model
    other = simulate(seed=4)
    other["features"] = wavelet_band_features(other["segments"], level=3)
    config = Config(**{**SMALL, "max_epochs": 1, "learning_rate": 1e-12,
                       "hrf_learning_rate": 1e-12})
    fit = fit_samba(other["features"], other["bold"], other["split"], other["src_xyz"],
                    other["bold_xyz"], config, tr_s=2.0, init=pretrained)
    for key, value in pretrained.state_dict().items():
        if key.startswith(("bipartite.", "parcel_gat.", "temporal.", "wavelet_attention.")):
            assert torch.equal(fit.model.state_dict()[key], value), key
    np.testing.assert_array_equal(fit.graphs["bipartite"],
                                  pretrained.bipartite.attention.edge_index.numpy())
    ridge = fit.model.ridge
    scale = (ridge.feature_std.reshape(-1) * ridge.regressor_std)[:, None]
    np.testing.assert_allclose(ridge.prior, pretrained.linear_path_coefficients() * scale,
                               rtol=1e-6, atol=1e-12)
    train = other["split"].train
    np.testing.assert_allclose(fit.model.feature_mean.numpy(),
                               other["features"][:, train].mean(axis=1), rtol=1e-5, atol=1e-6)
    assert fit.history.attrs["pretrained"]
    small = simulate(seed=4, n_bold=5)
    small["features"] = wavelet_band_features(small["segments"], level=3)
    with pytest.raises(ValueError, match="does not fit these data"):
        fit_samba(small["features"], small["bold"], small["split"], small["src_xyz"],
                  small["bold_xyz"], config, tr_s=2.0, init=pretrained)
