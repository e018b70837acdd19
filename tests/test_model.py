"""SAMBA model pieces: wavelet features and attention, graphs, graph attention, the model."""

import numpy as np
import pytest
import pywt
import torch

from samba_bids.model import SAMBA
from samba_bids.model.graph import (
    BipartiteGAT,
    GraphAttention,
    ParcelGAT,
    build_graphs,
    canonical_hrf_regressor,
    functional_edges,
    knn_bipartite_edges,
    neighbour_table,
)
from samba_bids.model.wavelet import (
    WaveletAttention,
    band_names,
    broadband_log_power,
    wavelet_band_features,
)

N_SRC, N_BOLD, N_BANDS, N_FEAT, HISTORY, TR = 5, 4, 4, 2, 6, 2.0


def _edges(seed=0):
    rng = np.random.default_rng(seed)
    src_xyz, bold_xyz = rng.normal(size=(N_SRC, 3)), rng.normal(size=(N_BOLD, 3))
    bipartite = knn_bipartite_edges(src_xyz, bold_xyz, 3)
    bold = knn_bipartite_edges(bold_xyz, bold_xyz, 2, exclude_self=True)
    return bipartite, bold


def _model(**kwargs):
    torch.manual_seed(0)
    bipartite, bold = _edges()
    options = dict(tr_s=TR, history=HISTORY, hidden_size=8, gat_heads=2, dropout=0.0)
    options.update(kwargs)
    return SAMBA(N_SRC, N_BOLD, N_BANDS, N_FEAT, bipartite, bold, **options)


def _input(batch=3, length=HISTORY + 5, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, N_SRC, length, N_BANDS, N_FEAT, generator=generator, dtype=dtype)


# --- wavelet features ------------------------------------------------------------------
def test_wavelet_band_features_match_pywt_per_segment():
    rng = np.random.default_rng(0)
    segments = rng.normal(size=(3, 4, 100)) * 1e-6  # volts: the features only shift
    features = wavelet_band_features(segments, "db5", 3)
    assert features.shape == (3, 4, 4, 2)
    eps = 1e-10 * np.mean(segments**2) + np.finfo(float).tiny
    for n in range(3):
        for v in range(4):
            coefficients = pywt.wavedec(segments[n, v], "db5", level=3)
            for band, c in enumerate(coefficients):
                assert features[n, v, band, 0] == pytest.approx(np.log(np.mean(c**2) + eps))
                assert features[n, v, band, 1] == pytest.approx(
                    np.log(np.mean(np.abs(c)) + np.sqrt(eps)))
    scaled = wavelet_band_features(segments * 1e6, "db5", 3)
    np.testing.assert_allclose(scaled[..., 0] - features[..., 0], np.log(1e12), rtol=1e-6)
    assert band_names(3) == ["A3", "D3", "D2", "D1"]


def test_wavelet_bands_locate_frequencies():
    t = np.arange(100) / 100.0
    slow, fast = np.sin(2 * np.pi * 3 * t), np.sin(2 * np.pi * 40 * t)
    features = wavelet_band_features(np.stack([slow, fast])[:, None, :], "db5", 3)
    assert np.argmax(features[0, 0, :, 0]) == 0  # 3 Hz -> A3 (0-6.25 Hz)
    assert np.argmax(features[1, 0, :, 0]) == 3  # 40 Hz -> D1 (25-50 Hz)
    zero = wavelet_band_features(np.zeros((1, 2, 100)))
    assert np.isfinite(zero).all()
    with pytest.raises(ValueError, match="NaN"):
        wavelet_band_features(np.full((1, 1, 100), np.nan))


def test_broadband_log_power():
    features = np.zeros((2, 3, 4, 2))
    features[..., 0] = np.log([1.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(broadband_log_power(features), np.log(3.0))


def test_wavelet_attention_sums_to_one_and_depends_on_input():
    torch.manual_seed(0)
    attention = WaveletAttention(N_SRC, N_BANDS, N_FEAT, 8)
    x = _input()
    out = attention(x)
    assert out.shape == (3, N_SRC, x.shape[2], 8)
    weights = attention.last_attention
    assert weights.shape == (3, N_SRC, x.shape[2], N_BANDS)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert (weights >= 0).all()
    # input-dependent: different segments get different weights
    assert weights.reshape(-1, N_BANDS).std(0).min() > 1e-3
    attention(2.0 * x)
    assert (attention.last_attention - weights).abs().max() > 1e-3


# --- graphs ----------------------------------------------------------------------------
def test_knn_bipartite_edges_known_geometry():
    src = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], axis=1)
    dst = np.array([[2.1, 0, 0], [8.9, 0, 0]])
    edges = knn_bipartite_edges(src, dst, 3)
    assert edges.shape == (2, 6)
    assert set(edges[0, edges[1] == 0]) == {1, 2, 3}
    assert set(edges[0, edges[1] == 1]) == {7, 8, 9}
    own = knn_bipartite_edges(src, src, 2, exclude_self=True)
    assert not np.any(own[0] == own[1])
    assert set(own[0, own[1] == 0]) == {1, 2}
    # k larger than the candidates is clipped
    assert knn_bipartite_edges(src[:2], dst, 5).shape == (2, 4)


def test_functional_edges_pick_largest_absolute_correlation():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(6, 200))
    dst = np.stack([src[2] + 0.1 * rng.normal(size=200), -src[5] + 0.2 * rng.normal(size=200)])
    edges = functional_edges(src, dst, 1)
    np.testing.assert_array_equal(edges, [[2, 5], [0, 1]])
    edges = functional_edges(src, np.stack([src[2] - src[4], src[0]]), 2)
    assert set(edges[0, edges[1] == 0]) == {2, 4}


def test_build_graphs_union_dedup_and_canonical_hrf():
    rng = np.random.default_rng(1)
    n_src, n_bold, n_vol = 6, 4, 150
    src_xyz, bold_xyz = rng.normal(size=(n_src, 3)), rng.normal(size=(n_bold, 3))
    power = rng.normal(size=(n_src, n_vol))
    bold = canonical_hrf_regressor(power[[3, 1, 4, 0]], TR) + 0.05 * rng.normal(size=(4, n_vol))
    bipartite, bold_edges = build_graphs(src_xyz, bold_xyz, power, bold, 2, 1, tr_s=TR)
    spatial = knn_bipartite_edges(src_xyz, bold_xyz, 2)
    pairs = set(map(tuple, bipartite.T))
    assert len(pairs) == bipartite.shape[1], "no duplicate edges"
    assert set(map(tuple, spatial.T)) <= pairs
    for dst, src in enumerate([3, 1, 4, 0]):  # the HRF-convolved power finds its source
        assert (src, dst) in pairs
    assert not np.any(bold_edges[0] == bold_edges[1])
    assert bipartite.shape[1] <= n_bold * 3 and bipartite.shape[1] >= n_bold * 2
    with pytest.raises(ValueError, match="at least 1"):
        build_graphs(src_xyz, bold_xyz, power, bold, 0, 0, tr_s=TR)


def test_neighbour_table_and_batched_edges():
    edges = np.array([[0, 2, 1, 0], [1, 1, 0, 2]])
    neighbours, mask = neighbour_table(edges, 3)
    assert mask.sum(1).tolist() == [1, 2, 1]
    assert sorted(neighbours[1][mask[1]].tolist()) == [0, 2]
    layer = GraphAttention(4, 2, 2, edges, n_src=3, n_dst=3, self_loops=False)
    batched = layer.batched_edge_index(3)
    expected = np.concatenate([edges + np.array([[3 * g], [3 * g]]) for g in range(3)], axis=1)
    np.testing.assert_array_equal(batched.numpy(), expected)
    assert layer.batched_edge_index(3) is batched  # cached


@pytest.mark.parametrize("cls", ["bipartite", "parcel"])
def test_dense_backend_equals_pyg_gatv2conv(cls):
    bipartite, bold = _edges()

    def build(backend):
        torch.manual_seed(0)
        if cls == "bipartite":
            return BipartiteGAT(N_SRC, N_BOLD, bipartite, 8, 2, 3, 0.0, backend)
        return ParcelGAT(N_BOLD, bold, 8, 2, 3, 0.0, backend)

    dense, pyg = build("dense"), build("pyg")
    pyg.load_state_dict(dense.state_dict())
    n_in = N_SRC if cls == "bipartite" else N_BOLD
    x = torch.randn(2, 5, n_in, 8, dtype=torch.float64)
    dense.double()
    pyg.double()
    x_dense, x_pyg = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_dense, out_pyg = dense(x_dense), pyg(x_pyg)
    assert out_dense.shape == (2, 5, N_BOLD, 8)
    torch.testing.assert_close(out_dense, out_pyg, atol=1e-10, rtol=1e-10)
    weights = torch.randn_like(out_dense)
    (out_dense * weights).sum().backward()
    (out_pyg * weights).sum().backward()
    torch.testing.assert_close(x_dense.grad, x_pyg.grad, atol=1e-10, rtol=1e-10)
    att_dense = dense.attention.conv.att.grad
    torch.testing.assert_close(att_dense, pyg.attention.conv.att.grad, atol=1e-10, rtol=1e-10)


# --- the model -------------------------------------------------------------------------
@pytest.mark.parametrize("rnn,backend", [("lstm", "dense"), ("gru", "pyg")])
def test_forward_shapes(rnn, backend):
    model = _model(rnn=rnn, gat_backend=backend)
    x = _input(batch=3, length=HISTORY + 5)
    out = model(x)
    assert out.shape == (3, N_BOLD, HISTORY + 5)
    assert torch.isfinite(out).all()
    assert model.neural_drive(x).shape == (3, N_BOLD, HISTORY + 5)
    with pytest.raises(ValueError):
        model(torch.zeros(1, N_SRC + 1, 4, N_BANDS, N_FEAT))


def test_eval_is_deterministic_dropout_off():
    model = _model(dropout=0.5)
    x = _input()
    model.eval()
    torch.testing.assert_close(model(x), model(x), atol=0, rtol=0)
    model.train()
    assert (model(x) - model(x)).abs().max() > 1e-4  # dropout is active in training


def test_no_information_flows_backwards_in_time():
    model = _model().double().eval()
    x = _input(batch=2, length=HISTORY + 8, dtype=torch.float64)
    base = model(x)
    base_drive = model.neural_drive(x)
    for t in (0, 4, HISTORY + 3):
        changed = x.clone()
        changed[:, :, t] += 3.0 * torch.randn_like(changed[:, :, t])
        out = model(changed)
        drive = model.neural_drive(changed)
        torch.testing.assert_close(out[..., :t], base[..., :t], atol=1e-10, rtol=0)
        torch.testing.assert_close(drive[..., :t], base_drive[..., :t], atol=1e-10, rtol=0)
        assert (drive[..., t] - base_drive[..., t]).abs().max() > 1e-4
        assert (out[..., t + 1:] - base[..., t + 1:]).abs().max() > 1e-4


def test_mask_zeroes_history_before_recording_start():
    model = _model().eval()
    x = _input(batch=2)
    mask = torch.ones(2, x.shape[2], dtype=torch.bool)
    mask[:, :3] = False
    drive = model.neural_drive(x, mask)
    assert torch.all(drive[..., :3] == 0) and drive[..., 3:].abs().max() > 0
    # what lies in masked segments does not matter
    noisy = x.clone()
    noisy[:, :, :3] = 100.0
    torch.testing.assert_close(model(noisy, mask), model(x, mask))


def test_standardization_and_checkpoint_roundtrip():
    model = _model().eval()
    mean = torch.randn(N_SRC, N_BANDS, N_FEAT)
    std = torch.rand(N_SRC, N_BANDS, N_FEAT) + 0.5
    model.set_standardization(mean, std)
    x = _input()
    # standardisation is applied inside: shifting the inputs and the mean cancels
    shifted = _model().eval()
    shifted.load_state_dict(model.state_dict())
    shifted.set_standardization(mean + 1.0, std)
    torch.testing.assert_close(shifted(x + 1.0), model(x), atol=1e-5, rtol=1e-5)
    restored = SAMBA.from_checkpoint(model.to_checkpoint())
    torch.testing.assert_close(restored(x), model(x))
    assert not restored.training


def test_all_parameters_get_gradients_including_hrf():
    model = _model()
    out = model(_input())
    (out[..., HISTORY:] ** 2).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None
               or not torch.isfinite(p.grad).all() or p.grad.abs().max() == 0]
    assert missing == []
    assert any(p is model.hrf.raw for p in model.parameters())


# --- ablations -------------------------------------------------------------------------
ABLATION_FLAGS = {"no-wavelet-attention": dict(use_wavelet_attention=False),
                  "no-graph": dict(use_graph=False), "fixed-hrf": dict(learn_hrf=False)}


def test_ablation_no_wavelet_attention_is_uniform():
    model = _model(use_wavelet_attention=False).eval()
    model(_input())
    weights = model.wavelet_attention.last_attention
    torch.testing.assert_close(weights, torch.full_like(weights, 1.0 / N_BANDS))
    names = dict(model.named_parameters())
    assert "wavelet_attention.query" not in names
    assert "wavelet_attention.band_weight" in names  # same embeddings
    assert model.hparams["use_wavelet_attention"] is False


def test_ablation_no_graph_has_no_gat():
    from torch_geometric.nn import GATv2Conv

    from samba_bids.model.graph import DenseParcelMap

    full = _model()
    model = SAMBA(N_SRC, N_BOLD, N_BANDS, N_FEAT, None, None, tr_s=TR, history=HISTORY,
                  hidden_size=8, use_graph=False)
    assert any(isinstance(m, GATv2Conv) for m in full.modules())
    assert not any(isinstance(m, (GATv2Conv, GraphAttention)) for m in model.modules())
    assert isinstance(model.parcel_map, DenseParcelMap)
    assert model.parcel_map.weight.shape == (N_BOLD, N_SRC)
    assert model(_input()).shape == (3, N_BOLD, HISTORY + 5)
    with pytest.raises(ValueError, match="needs"):
        SAMBA(N_SRC, N_BOLD, N_BANDS, N_FEAT, None, None, tr_s=TR, history=HISTORY)


def test_ablation_fixed_hrf_has_no_trainable_hrf():
    full, model = _model(), _model(learn_hrf=False)
    assert not model.hrf.raw.requires_grad
    assert all(not name.startswith("hrf.") for name, p in model.named_parameters()
               if p.requires_grad)
    assert full.n_parameters() - model.n_parameters() == N_BOLD * 6
    peaks = model.hrf.time_to_peak()
    np.testing.assert_allclose(peaks, 4.99, atol=0.02)  # SPM canonical


@pytest.mark.parametrize("name", sorted(ABLATION_FLAGS))
def test_ablations_causal_checkpointed_and_trainable(name):
    flags = ABLATION_FLAGS[name]
    model = _model(**flags)
    for key, value in flags.items():
        assert model.hparams[key] is value
    out = model(_input())
    (out[..., HISTORY:] ** 2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad
               and (p.grad is None or p.grad.abs().max() == 0)]
    assert missing == []
    model = model.double().eval()
    x = _input(batch=2, length=HISTORY + 6, dtype=torch.float64)
    changed = x.clone()
    changed[:, :, 5] += 3.0
    torch.testing.assert_close(model(changed)[..., :5], model(x)[..., :5], atol=1e-10, rtol=0)
    restored = SAMBA.from_checkpoint(model.float().to_checkpoint())
    assert restored.hparams == model.hparams
    torch.testing.assert_close(restored(x.float()), model(x.float()))
    assert restored.hrf.raw.requires_grad == model.hrf.raw.requires_grad


def test_ablation_configs():
    from samba_bids.config import Config
    from samba_bids.training import ablation_configs

    base = Config(hidden_size=12, seed=5, learn_hrf=False)
    configs = ablation_configs(base)
    assert list(configs) == ["samba", "no-wavelet-attention", "no-graph", "fixed-hrf",
                             "linear-path-only", "no-linear-path"]
    flags = {name: (c.use_wavelet_attention, c.use_graph, c.learn_hrf, c.linear_path,
                    c.nonlinear_path) for name, c in configs.items()}
    on = (True,) * 5
    assert flags == {"samba": on, "no-wavelet-attention": (False, *on[1:]),
                     "no-graph": (True, False, *on[2:]), "fixed-hrf": (*on[:2], False, *on[3:]),
                     "linear-path-only": (*on[:4], False), "no-linear-path": (*on[:3], False, True)}
    assert all(c.hidden_size == 12 and c.seed == 5 for c in configs.values())
    assert all(getattr(Config(), flag) for flag in ("use_graph", "learn_hrf", "linear_path",
                                                     "use_wavelet_attention", "nonlinear_path"))
