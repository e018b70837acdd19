"""Training losses for SAMBA.

SAMBA's public code uses 1 - cosine similarity over time; here it is 1 - Pearson r (cosine
similarity of the mean-removed series), which ignores each window's offset, plus an optional
mean squared error on the z-scored BOLD that anchors amplitude and offset.
"""

from __future__ import annotations

import torch


def pearson_r(pred: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation over the last axis.

    Parameters
    ----------
    pred, target : Tensor, shape (..., T)

    Returns
    -------
    Tensor, shape (...)
        0 where either series is constant (``eps`` keeps it finite).
    """
    pred = pred - pred.mean(dim=-1, keepdim=True)
    target = target - target.mean(dim=-1, keepdim=True)
    numerator = (pred * target).sum(dim=-1)
    denominator = torch.sqrt((pred**2).sum(dim=-1) * (target**2).sum(dim=-1) + eps)
    return numerator / denominator


def pearson_loss(pred: torch.Tensor, target: torch.Tensor, *, mse_weight: float = 0.0,
                 eps: float = 1e-8) -> torch.Tensor:
    """Mean over batch and parcels of ``1 - r`` over time, plus ``mse_weight * MSE``.

    Parameters
    ----------
    pred : Tensor, shape (B, M, W)
        Predicted BOLD of the target volumes of each window.
    target : Tensor, shape (B, M, W)
        Observed BOLD, z-scored with the training block's statistics (the MSE term is in those
        units).
    mse_weight : float
        Weight of the mean squared error (0 disables it).
    eps : float
        Keeps r finite for constant series.

    Returns
    -------
    Tensor, scalar

    Raises
    ------
    ValueError
        If the shapes differ or ``mse_weight`` is negative.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ.")
    if mse_weight < 0:
        raise ValueError(f"mse_weight must be >= 0; got {mse_weight}.")
    loss = (1.0 - pearson_r(pred, target, eps=eps)).mean()
    if mse_weight:
        loss = loss + mse_weight * torch.mean((pred - target) ** 2)
    return loss
