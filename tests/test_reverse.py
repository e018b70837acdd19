"""Reverse direction: BOLD -> source-parcel band power, on data with a planted forward model."""

import numpy as np
import pytest
import torch

from samba_bids.config import Config
from samba_bids.model.reverse import SAMBAReverse
from samba_bids.model.wavelet import wavelet_band_features
from samba_bids.training import fit_reverse, predict_reverse, reverse_windows

from .test_training import SMALL, simulate


@pytest.fixture(scope="module")
def planted():
    # 3 source parcels, each driving two BOLD parcels: the envelope is recoverable from BOLD
    data = simulate(seed=3, n_src=3, n_bold=6, n_volumes=260, noise=0.2)
    data["features"] = wavelet_band_features(data["segments"])
    return data


def test_reverse_windows_mirror_make_windows():
    windows = reverse_windows(np.arange(10, 20), lookahead=3, window_trs=4, n_volumes=22)
    # targets first (inside the block), then K volumes ahead; -1 past the end of the run
    assert windows.shape == (7, 7)
    np.testing.assert_array_equal(windows[0], np.arange(10, 17))
    np.testing.assert_array_equal(windows[-1], [16, 17, 18, 19, 20, 21, -1])
    tiled = reverse_windows(np.arange(10, 20), lookahead=3, window_trs=4, n_volumes=22,
                            tile=True)
    targets = np.unique(tiled[:, :4])
    np.testing.assert_array_equal(targets, np.arange(10, 20))


def test_reverse_model_reads_only_the_volumes_ahead():
    rng = np.random.default_rng(0)
    edges = np.array([[0, 1, 2, 0], [0, 1, 2, 3]])  # source -> BOLD
    bold_edges = np.array([[0, 1, 2, 3], [1, 2, 3, 0]])
    model = SAMBAReverse(4, 3, 2, edges, bold_edges, lookahead=3, hidden_size=8).eval()
    x = torch.as_tensor(rng.normal(size=(2, 4, 12)), dtype=torch.float32)
    out = model(x)
    assert out.shape == (2, 3, 12, 2)
    changed = x.clone()
    changed[:, :, 8] += 5.0  # volume 8 can inform targets 5..8 only
    diff = (model(changed) - out).abs().sum(dim=(0, 1, 3))
    assert torch.all(diff[5:9] > 0)
    assert torch.all(diff[:5] == 0) and torch.all(diff[9:] == 0)
    # checkpoint round trip
    again = SAMBAReverse.from_checkpoint(model.to_checkpoint())
    torch.testing.assert_close(again(x), out)


def test_fit_reverse_recovers_planted_band_power(planted):
    config = Config(**{**SMALL, "max_epochs": 40, "patience": 10, "hidden_size": 16})
    fit = fit_reverse(planted["features"], planted["bold"], planted["split"],
                      planted["src_xyz"], planted["bold_xyz"], config)
    assert fit.best_epoch >= 1 and len(fit.history) >= fit.best_epoch
    predicted = predict_reverse(fit.model, planted["bold"], window_trs=fit.window_trs)
    power = planted["features"][..., 0]
    assert predicted.shape == power.shape
    test = planted["split"].test
    # the planted envelope drives the power of every band: r per source parcel, broadband
    r = [np.corrcoef(predicted[n, test].mean(-1), power[n, test].mean(-1))[0, 1]
         for n in range(power.shape[0])]
    assert np.min(r) > 0.3, r
