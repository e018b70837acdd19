"""The epoch loop both directions train with: AdamW over shuffled training windows, early
stopping on the validation block, the best epoch's weights restored.

The loop knows nothing of the model's inputs: a ``batch_loss(windows) -> scalar Tensor``
callable computes the loss of a batch of windows with the model in its current mode
(:func:`~samba_bids.training.fit.fit_samba`, :func:`~samba_bids.training.reverse.fit_reverse`).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .distributed import _mean_over_processes, distributed_world

logger = logging.getLogger(__name__)

#: Gradient norm clipping threshold.
MAX_GRAD_NORM = 5.0


@torch.no_grad()
def mean_window_loss(batch_loss, windows, batch_size: int) -> float:
    """The validation loss: mean of ``batch_loss`` over ``windows``, in batches of
    ``batch_size`` weighted by the windows per batch, without gradients.

    The one place the validation loss is computed: the epoch loop's ``val_loss`` and
    :func:`~samba_bids.training.fit.evaluate_loss` both call it. The model is used in its
    current mode (the callers put it in eval mode).
    """
    return sum(float(batch_loss(windows[first:first + batch_size]))
               * len(windows[first:first + batch_size])
               for first in range(0, len(windows), batch_size)) / len(windows)


def _make_optimizer(model, config):
    hrf, no_decay, decay = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:  # frozen (the fixed-HRF ablation)
            continue
        if name.startswith("hrf."):
            hrf.append(parameter)
        elif (parameter.ndim < 2 or "embedding" in name or name in ("gain", "offset")
              or "norm" in name or name.startswith("linear.")):  # linear: its own penalty
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    lr = float(config.learning_rate)
    hrf_lr = getattr(config, "hrf_learning_rate", None)
    return torch.optim.AdamW([
        {"params": decay, "weight_decay": float(config.weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": hrf, "weight_decay": 0.0, "lr": lr if hrf_lr is None else float(hrf_lr)},
    ], lr=lr)


def _train_one_epoch(model, optimizer, batch_loss, train_windows, rng, batch_size, world,
                     rank) -> float:
    """One pass over the shuffled training windows, this process's share of every batch.

    Returns the mean training loss over the batches (dropout on), averaged over processes.
    """
    model.train()
    order = rng.permutation(len(train_windows))  # the same on every process (same seed)
    losses = []
    for first in range(0, len(order), batch_size * world):
        chunk = order[first:first + batch_size * world]
        if world > 1:  # this process's share; every process must take a step
            if len(chunk) < world:
                break
            chunk = np.array_split(chunk, world)[rank]
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(train_windows[chunk])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        losses.append(float(loss.detach()))
    return _mean_over_processes(float(np.mean(losses)), world)


@dataclass
class _BestEpoch:
    """Early-stopping state: the best epoch so far, its weights, and the epochs since."""

    criterion: float = np.inf
    loss: float = np.inf
    epoch: int = 0
    state: dict | None = None
    stale: int = 0

    def update(self, epoch: int, criterion: float, val_loss: float, model) -> int:
        """Keep ``model``'s weights if ``criterion`` (lower is better) is the best yet; return
        the epochs since the best."""
        if criterion < self.criterion:
            self.criterion, self.loss, self.epoch, self.stale = criterion, val_loss, epoch, 0
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                        model.state_dict().items()})
        else:
            self.stale += 1
        return self.stale


def _check_finite(desc, epoch, train_loss, val_loss, config):
    if not (np.isfinite(train_loss) and np.isfinite(val_loss)):
        raise FloatingPointError(
            f"{desc} training diverged at epoch {epoch} (train loss {train_loss}, "
            f"validation loss {val_loss}); lower learning_rate (now "
            f"{config.learning_rate}).")


def _history_frame(rows, with_score: bool) -> pd.DataFrame:
    columns = ["epoch", "train_loss", "val_loss", "seconds"]
    if with_score:
        columns.insert(3, "val_score")
    return pd.DataFrame(rows, columns=columns)


def _train_epochs(model, batch_loss, train_windows, val_windows, config, rng, *,
                  progress=False, desc="SAMBA", val_score=None, keep_initial=False):
    """Epochs of AdamW over shuffled training windows, early stopping on the validation loss.

    Inside a torch.distributed process group each batch of ``batch_size`` windows per process
    is split over the processes (the shuffling is seeded alike everywhere), DDP averages the
    gradients, and every process evaluates the whole validation block, so all replicas make
    the same early-stopping decision. One batch of ``batch_size * world`` windows then equals
    one single-process batch of that size.

    ``batch_loss(windows) -> scalar Tensor`` computes the loss of a batch of windows with the
    model in its current mode. The model ends holding the best validation epoch's weights.
    ``val_score() -> float`` (optional; higher is better, the model in eval mode) replaces the
    validation loss as the early-stopping criterion. ``keep_initial``: the model as given is
    a candidate too (epoch 0: a meaningful initialisation, such as the ridge fit of the linear
    path, that training must beat on the validation block to be replaced); the history holds
    the trained epochs only.

    Returns
    -------
    history : pandas.DataFrame
        ``epoch``, ``train_loss``, ``val_loss``, ``seconds`` per epoch (and ``val_score``
        with ``val_score``); ``history.attrs["initial_val_loss"]`` the validation loss of the
        initial weights (NaN without ``keep_initial``).
    best_epoch : int
        0 when ``keep_initial`` and no epoch beat the initial weights.
    best_loss : float

    Raises
    ------
    FloatingPointError
        If a loss becomes non-finite.
    """
    from tqdm.auto import tqdm

    optimizer = _make_optimizer(model, config)
    batch_size = int(config.batch_size)
    world, rank = distributed_world()
    rows, best, initial_loss = [], _BestEpoch(), np.nan
    if keep_initial:
        model.eval()
        val_loss = mean_window_loss(batch_loss, val_windows, batch_size)
        score = float(val_score()) if val_score is not None else np.nan
        _check_finite(desc, 0, 0.0, val_loss, config)
        best.update(0, -score if val_score is not None else val_loss, val_loss, model)
        initial_loss = val_loss
        logger.info("%s: validation loss %.4f at initialisation (epoch 0)", desc, val_loss)
    bar = tqdm(range(1, int(config.max_epochs) + 1), desc=desc, unit="epoch",
               disable=not progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        train_loss = _train_one_epoch(model, optimizer, batch_loss, train_windows, rng,
                                      batch_size, world, rank)
        model.eval()
        val_loss = mean_window_loss(batch_loss, val_windows, batch_size)
        score = float(val_score()) if val_score is not None else np.nan
        _check_finite(desc, epoch, train_loss, val_loss, config)
        seconds = time.perf_counter() - start
        rows.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                     "val_score": score, "seconds": seconds})
        stale = best.update(epoch, -score if val_score is not None else val_loss, val_loss,
                            model)
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}", best=best.epoch)
        logger.debug("epoch %d: train %.4f, validation %.4f (%.2f s)", epoch, train_loss,
                     val_loss, seconds)
        if stale >= int(config.patience):
            logger.info("early stop at epoch %d: no better validation %s for %d epochs",
                        epoch, "loss" if val_score is None else "score", stale)
            break
    bar.close()
    model.load_state_dict(best.state)
    history = _history_frame(rows, val_score is not None)
    history.attrs["initial_val_loss"] = initial_loss
    return history, best.epoch, float(best.loss)
