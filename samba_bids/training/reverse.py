"""The reverse translator: BOLD -> source-parcel band power, trained and applied.

The same checks, seeds, graphs, optimiser and early stopping as the forward fit
(:mod:`samba_bids.training.fit`, :mod:`samba_bids.training.loop`); windows look ahead
(:func:`~samba_bids.training.windows.reverse_windows`): a volume's BOLD follows the
electrophysiology that drove it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..model.losses import pearson_loss
from .fit import FitResult, _evaluating_on, _finish_fit, _setup_fit, resolve_device
from .loop import _train_epochs
from .windows import reverse_windows, split_reverse_windows

logger = logging.getLogger(__name__)


def _reverse_batch(bold_all, power_all, windows, window_trs):
    """BOLD (B, M, L), presence mask (B, L) and band-power targets (B, N, W, bands)."""
    idx = torch.as_tensor(windows, device=bold_all.device)
    mask = idx >= 0
    bold = bold_all[:, idx.clamp(min=0)].permute(1, 0, 2)
    power = None
    if power_all is not None:
        power = power_all[:, idx[:, :window_trs]].permute(1, 0, 2, 3)
    return bold, mask, power


def fit_reverse(features, bold, split, src_centroids_mm, bold_centroids_mm, config, *,
                tr_s: float | None = None, progress: bool = False) -> FitResult:
    """Train the reverse translator (BOLD -> source-parcel band power), early stopping on the
    validation block.

    Parameters
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features (:func:`~samba_bids.model.wavelet.wavelet_band_features`); the
        targets are ``features[..., 0]``, the log mean power of each band per volume.
    bold : ndarray, shape (M, V)
        Parcel BOLD, z-scored with training-block statistics (the input).
    split, src_centroids_mm, bold_centroids_mm, config, tr_s, progress
        As :func:`fit_samba` (same graphs, seeds, optimiser and early stopping).

    Returns
    -------
    FitResult
        ``model`` is a :class:`~samba_bids.model.reverse.SAMBAReverse`.

    Raises
    ------
    ValueError, FloatingPointError
        As :func:`fit_samba`.

    Notes
    -----
    Loss: mean over windows, source parcels and bands of ``1 - r`` over the target volumes
    (plus ``config.mse_weight`` times the MSE of the training-standardised band power).
    """
    from ..model.reverse import SAMBAReverse

    setup = _setup_fit(features, bold, split, src_centroids_mm, bold_centroids_mm, config, tr_s)
    power = setup.features[..., 0]  # (N, V, bands)
    n_src, n_volumes, n_bands = power.shape
    lookahead, window = setup.history, setup.window
    model = SAMBAReverse(setup.bold.shape[0], n_src, n_bands, setup.bipartite,
                         setup.bold_edges, lookahead=lookahead, hidden_size=config.hidden_size,
                         gat_heads=config.gat_heads, dropout=config.dropout)
    model.set_standardization(power[:, setup.train].mean(axis=1),
                              power[:, setup.train].std(axis=1))
    model.to(setup.device)
    bold_all = torch.as_tensor(setup.bold, dtype=torch.float32, device=setup.device)
    power_all = model.standardize(torch.as_tensor(power, dtype=torch.float32,
                                                  device=setup.device))
    train_windows = split_reverse_windows(split, "train", lookahead, window, n_volumes)
    val_windows = split_reverse_windows(split, "validation", lookahead, window, n_volumes,
                                        tile=True)
    logger.info("SAMBA reverse: %d BOLD -> %d source parcels x %d bands, %d parameters, "
                "%d training / %d validation windows of %d + %d volumes, device %s",
                setup.bold.shape[0], n_src, n_bands, model.n_parameters(), len(train_windows),
                len(val_windows), window, lookahead, setup.device)

    def batch_loss(idx):
        x, mask, y = _reverse_batch(bold_all, power_all, idx, window)
        pred = model(x, mask=mask)[:, :, :window]  # (B, N, W, bands)
        return pearson_loss(pred.permute(0, 1, 3, 2).flatten(1, 2),
                            y.permute(0, 1, 3, 2).flatten(1, 2), mse_weight=config.mse_weight)

    trained = _train_epochs(model, batch_loss, train_windows, val_windows, config, setup.rng,
                            progress=progress, desc="SAMBA reverse")
    return _finish_fit(model, trained, setup, "SAMBA reverse")


@torch.no_grad()
def predict_reverse(model, bold, *, window_trs: int, device="cpu",
                    batch_size: int = 16) -> np.ndarray:
    """Predicted log band power of every source parcel, band and volume of a run.

    Parameters
    ----------
    model : samba_bids.model.reverse.SAMBAReverse
        A fitted reverse model.
    bold : ndarray, shape (M, V)
        Parcel BOLD, standardised as in training.
    window_trs : int
        W targets per window (shortened to V for short runs).
    device : str or torch.device
    batch_size : int

    Returns
    -------
    ndarray, shape (N, V, n_bands), float64
        In the units of ``features[..., 0]`` (natural log of the mean band power).

    Raises
    ------
    ValueError
        If ``bold`` does not have the model's M parcels.
    """
    bold = np.asarray(bold, dtype=np.float32)
    if bold.ndim != 2 or bold.shape[0] != model.n_bold:
        raise ValueError(f"bold must be ({model.n_bold}, V); got {bold.shape}.")
    n_volumes = bold.shape[1]
    window = max(1, min(int(window_trs), n_volumes))
    device = resolve_device(device)
    with _evaluating_on(model, device):
        bold_all = torch.as_tensor(bold, device=device)
        windows = reverse_windows(np.arange(n_volumes), model.lookahead, window, n_volumes,
                                  tile=True)
        out = np.zeros((model.n_src, n_volumes, model.hparams["n_bands"]))
        for first in range(0, len(windows), batch_size):
            chunk = windows[first:first + batch_size]
            x, mask, _ = _reverse_batch(bold_all, None, chunk, window)
            pred = model.unstandardize(model(x, mask=mask)[:, :, :window])  # (B, N, W, bands)
            out[:, chunk[:, :window].ravel()] = (pred.permute(1, 0, 2, 3)
                                                 .reshape(model.n_src, -1, pred.shape[-1])
                                                 .double().cpu().numpy())
    return out
