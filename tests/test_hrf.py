"""ParcelHRF: canonical initialisation, causal FFT convolution, trainability, bounds."""

import numpy as np
import pytest
import torch
from scipy import stats

from samba_bids.model.hrf import (
    HRF_PARAMETERS,
    ParcelHRF,
    causal_fft_convolve,
    double_gamma,
    n_hrf_taps,
    spm_canonical_hrf,
)


def test_spm_canonical_hrf_is_spm_double_gamma():
    t = np.linspace(0, 32, 641)
    expected = stats.gamma.pdf(t, 6) - stats.gamma.pdf(t, 16) / 6
    np.testing.assert_allclose(spm_canonical_hrf(t), expected)
    fine = np.arange(0, 32, 0.001)
    assert fine[np.argmax(spm_canonical_hrf(fine))] == pytest.approx(5.0, abs=0.05)
    assert spm_canonical_hrf(0.0) == 0.0 and spm_canonical_hrf(-1.0) == 0.0


@pytest.mark.parametrize("tr_s", [0.72, 2.0])
def test_canonical_hrf_is_nilearns_spm_hrf(tr_s):
    """Against an independent implementation: nilearn's ``spm_hrf`` (its gamma densities are
    shifted by one oversampled step, ``loc=dt``, and its undershoot ratio is 0.167 where SPM's
    is 1/6), and the differentiable HRF at its canonical parameters."""
    from nilearn.glm.first_level import spm_hrf

    oversampling = 50
    expected = spm_hrf(tr_s, oversampling=oversampling, time_length=32.0)
    dt = tr_s / oversampling
    t = np.linspace(0.0, 32.0, expected.size) - dt
    ours = spm_canonical_hrf(t)
    np.testing.assert_allclose(ours / ours.sum(), expected, atol=2e-3 * expected.max())
    assert np.argmax(ours) == np.argmax(expected)
    learned = double_gamma(torch.as_tensor(t), ParcelHRF(1).params().double())
    learned = learned.detach().numpy().reshape(-1)
    np.testing.assert_allclose(learned / learned.sum(), expected, atol=2e-3 * expected.max())


@pytest.mark.parametrize("tr_s", [0.72, 1.0, 2.0, 2.1])
def test_parcel_hrf_starts_at_spm_canonical(tr_s):
    hrf = ParcelHRF(4, support_s=32.0)
    n_taps = n_hrf_taps(tr_s, 32.0)
    assert n_taps == int(np.ceil(32.0 / tr_s)) + 1
    times = np.arange(n_taps) * tr_s
    expected = spm_canonical_hrf(times)
    expected = expected / expected.sum()
    kernel = hrf.kernel(tr_s).detach().double().numpy()
    assert kernel.shape == (4, n_taps)
    for row in kernel:
        np.testing.assert_allclose(row, expected, atol=1e-6)
    # the unnormalised double gamma too, on a fine grid
    fine = torch.linspace(0, 32, 801, dtype=torch.float64)
    values = double_gamma(fine, hrf.params().double()).detach().numpy()
    np.testing.assert_allclose(values, np.broadcast_to(spm_canonical_hrf(fine.numpy()),
                                                       values.shape), atol=1e-6)
    np.testing.assert_allclose(hrf.time_to_peak(), 4.99, atol=0.02)


def test_parameters_frame():
    hrf = ParcelHRF(3)
    frame = hrf.parameters_frame(["a", "b", "c"])
    assert list(frame.columns) == ["parcel", *[p[0] for p in HRF_PARAMETERS], "time_to_peak_s"]
    np.testing.assert_allclose(frame.iloc[:, 1:7].to_numpy(),
                               np.tile([p[1] for p in HRF_PARAMETERS], (3, 1)), atol=1e-5)
    with pytest.raises(ValueError, match="2 parcel names"):
        hrf.parameters_frame(["a", "b"])


def test_causal_fft_convolve_equals_numpy_convolve():
    rng = np.random.default_rng(0)
    drive = rng.normal(size=(3, 5, 40))
    kernel = rng.normal(size=(5, 17))
    out = causal_fft_convolve(torch.from_numpy(drive), torch.from_numpy(kernel)).numpy()
    assert out.shape == drive.shape
    for b in range(3):
        for m in range(5):
            np.testing.assert_allclose(out[b, m], np.convolve(drive[b, m], kernel[m])[:40],
                                       atol=1e-10)
    # a kernel longer than the signal is fine too
    long_kernel = rng.normal(size=(5, 60))
    out = causal_fft_convolve(torch.from_numpy(drive), torch.from_numpy(long_kernel)).numpy()
    np.testing.assert_allclose(out[1, 2], np.convolve(drive[1, 2], long_kernel[2])[:40],
                               atol=1e-10)


def test_causal_fft_convolve_is_causal_not_cross_correlation():
    drive = torch.zeros(1, 1, 30, dtype=torch.float64)
    drive[0, 0, 10] = 1.0
    kernel = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    out = causal_fft_convolve(drive, kernel)[0, 0].numpy()
    # an impulse at t=10 gives the kernel from t=10 on, in its own order
    np.testing.assert_allclose(out[10:14], [0, 1, 2, 3], atol=1e-12)
    np.testing.assert_allclose(out[:10], 0, atol=1e-12)

    rng = np.random.default_rng(1)
    base = torch.from_numpy(rng.normal(size=(2, 4, 50)))
    kernel = ParcelHRF(4).kernel(1.0).detach().double()
    for t in (0, 17, 40):  # h(0) = 0, so the change shows from t + 1 on
        changed = base.clone()
        changed[:, :, t] += 5.0
        a, b = causal_fft_convolve(base, kernel), causal_fft_convolve(changed, kernel)
        torch.testing.assert_close(a[..., :t], b[..., :t], atol=1e-12, rtol=0)
        assert (a[..., t:] - b[..., t:]).abs().max() > 0.1


def test_causal_fft_convolve_rejects_mismatch():
    with pytest.raises(ValueError, match="same M"):
        causal_fft_convolve(torch.zeros(1, 3, 10), torch.zeros(4, 5))


def test_every_hrf_parameter_is_registered_and_trained():
    torch.manual_seed(0)
    hrf = ParcelHRF(5)
    registered = {id(p) for p in hrf.parameters()}
    assert id(hrf.raw) in registered and hrf.raw.shape == (5, 6)
    before = hrf.params().detach().clone()
    optimizer = torch.optim.Adam(hrf.parameters(), lr=1e-2)
    target = torch.rand(5, n_hrf_taps(1.5))
    loss = ((hrf.kernel(1.5) - target) ** 2).sum()
    loss.backward()
    optimizer.step()
    after = hrf.params().detach()
    assert torch.all((after - before).abs() > 1e-6), "every parameter of every parcel moves"
    assert np.any(np.abs(hrf.time_to_peak() - 4.99) > 1e-3)


def test_bounds_hold_after_large_steps():
    torch.manual_seed(0)
    hrf = ParcelHRF(6)
    optimizer = torch.optim.SGD(hrf.parameters(), lr=1e6)
    for sign in (1.0, -1.0, 1.0):
        optimizer.zero_grad()
        weights = sign * torch.randn(6, n_hrf_taps(2.0))
        (hrf.kernel(2.0) * weights).sum().backward()
        optimizer.step()
        params = hrf.params().detach()
        lower = torch.tensor([p[2] for p in HRF_PARAMETERS])
        upper = torch.tensor([p[3] for p in HRF_PARAMETERS])
        assert torch.all(params >= lower) and torch.all(params <= upper)
        kernel = hrf.kernel(2.0).detach()
        assert torch.isfinite(kernel).all()
        torch.testing.assert_close(kernel.sum(-1), torch.ones(6))
    # anywhere inside the bounds the HRF keeps a physiological positive peak
    ttp = hrf.time_to_peak()
    assert np.all((ttp > 1.0) & (ttp < 13.0))
    fine = torch.arange(0, 32, 0.01, dtype=torch.float64)
    values = double_gamma(fine, hrf.params().double()).detach()
    assert torch.all(values.max(-1).values > 2 * values.min(-1).values.abs())
