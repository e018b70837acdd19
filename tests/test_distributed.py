"""Data-parallel training with torch.distributed (DDP, gloo backend, two CPU processes) and
one model across runs (the group model's training)."""

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from samba_bids.config import Config
from samba_bids.model.wavelet import wavelet_band_features
from samba_bids.training import (
    concatenate_runs,
    evaluate_loss,
    fit_samba,
    make_windows,
    split_windows,
)

from .test_training import simulate

#: No dropout, so that the gradients depend on the data only.
SETTINGS = dict(hidden_size=8, gat_heads=2, k_spatial=2, k_functional=2, dropout=0.0,
                max_epochs=2, patience=5, learning_rate=3e-3, window_trs=5, device="cpu",
                mse_weight=0.1, seed=3,
                linear_path=False)  # the training machinery, not the ridge-initialised start


def _problem():
    data = simulate(seed=4, n_src=5, n_bold=4, n_volumes=160)
    features = wavelet_band_features(data["segments"], level=3)
    split = data["split"]
    split.train = split.train[:84]  # 80 windows of 5 targets: whole batches of 8
    return features, data["bold"], split, data["src_xyz"], data["bold_xyz"]


def _worker(rank, world, init_file, out_file, one_step=False):
    """Train in a gloo process group: the whole problem, or one batch for one step."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        torch.set_num_threads(1)
        problem = _one_batch_problem() if one_step else _problem()
        fit = fit_samba(*problem, Config(batch_size=4, **(ONE_STEP if one_step else SETTINGS)))
        state = {k: v.detach().clone() for k, v in fit.model.state_dict().items()}
        gathered = [None] * world
        dist.all_gather_object(gathered, state)
        if rank == 0:
            torch.save({"states": gathered, "history": fit.history}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_with_twice_the_batch(tmp_path):
    """Two gloo processes with 4 windows each per step train the same model as one process
    with 8 windows per step (DDP averages the gradients of equal shares), and both replicas
    end identical."""
    features, bold, split, src_xyz, bold_xyz = _problem()
    n_train = len(make_windows(split.train, split.history, SETTINGS["window_trs"]))
    assert n_train % 8 == 0, "the comparison needs whole batches of 8"
    out_file = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out_file)), nprocs=2, join=True)
    result = torch.load(out_file, weights_only=False)
    replica0, replica1 = result["states"]
    for key in replica0:
        torch.testing.assert_close(replica0[key], replica1[key], rtol=0, atol=0)
    torch.set_num_threads(1)
    single = fit_samba(features, bold, split, src_xyz, bold_xyz,
                       Config(batch_size=8, **SETTINGS))
    reference = single.model.state_dict()
    # the last epoch's update, as the scale: DDP must land where the single process does,
    # up to float rounding (which AdamW amplifies for weights whose gradient is about 0)
    one_epoch = fit_samba(features, bold, split, src_xyz, bold_xyz,
                          Config(batch_size=8, **{**SETTINGS, "max_epochs": 1}))
    keys = [k for k, v in reference.items() if v.is_floating_point()]

    def distance(a, b):
        return float(torch.sqrt(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in keys)))

    update = distance(reference, one_epoch.model.state_dict())
    print(f"DDP vs one process: {distance(replica0, reference):.3g}; one epoch's update "
          f"{update:.3g}")
    assert update > 1e-3
    assert distance(replica0, reference) < 0.05 * update
    np.testing.assert_allclose(result["history"]["train_loss"], single.history["train_loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(result["history"]["val_loss"], single.history["val_loss"],
                               rtol=1e-4)


#: One optimisation step: 8 training windows (12 training volumes, W = 5), one epoch.
ONE_STEP = {**SETTINGS, "max_epochs": 1}


def _one_batch_problem():
    features, bold, split, src_xyz, bold_xyz = _problem()
    split.train = split.train[:12]
    return features, bold, split, src_xyz, bold_xyz


def test_ddp_one_step_equals_one_process_on_the_whole_batch(tmp_path):
    """Known answer for DDP's gradient averaging: one AdamW step of two gloo processes, each
    on its half (4 windows) of the one batch of 8, lands where one step of a single process
    on the whole batch does, to float rounding (the loss is a mean over equal halves, so the
    mean of the halves' gradients is the whole batch's gradient)."""
    problem = _one_batch_problem()
    split = problem[2]
    assert len(make_windows(split.train, split.history, ONE_STEP["window_trs"])) == 8
    out_file = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out_file), True), nprocs=2,
             join=True)
    result = torch.load(out_file, weights_only=False)
    replica0, replica1 = result["states"]
    torch.set_num_threads(1)
    single_fit = fit_samba(*problem, Config(batch_size=8, **ONE_STEP))
    single = single_fit.model.state_dict()
    # learning rate 0: the initial weights (same seed), to show that the step moved them
    initial = fit_samba(*problem, Config(batch_size=8, **{**ONE_STEP, "learning_rate": 0.0})
                        ).model.state_dict()
    step = max(float((single[k] - initial[k]).abs().max()) for k in single
               if single[k].is_floating_point())
    assert step > 1e-3  # AdamW's first step moves a weight by about the learning rate
    for key in single:
        torch.testing.assert_close(replica0[key], replica1[key], rtol=0, atol=0)
        torch.testing.assert_close(replica0[key], single[key], rtol=0, atol=1e-6,
                                   msg=lambda m, key=key: f"{key}: {m}")
    # the training loss is the batch's loss before the step: the mean of the halves' losses
    for column in ("train_loss", "val_loss"):
        np.testing.assert_allclose(result["history"][column], single_fit.history[column],
                                   rtol=1e-5)


def test_split_windows_never_cross_runs():
    """Windows of concatenated runs stay inside their run; history before a run is absent."""
    features, bold, split, _, _ = _problem()
    short = features[:, :120], bold[:, :120]
    split2 = type(split)(train=split.train[split.train < 60], validation=split.validation,
                         test=split.test[split.test < 120], history=split.history,
                         tr_s=split.tr_s)
    cat_features, cat_bold, runs = concatenate_runs([(features, bold, split),
                                                     (*short, split2)])
    assert cat_features.shape[1] == 280 and cat_bold.shape[1] == 280
    assert runs.offsets == [0, 160]
    np.testing.assert_array_equal(runs.train, np.r_[split.train, split2.train + 160])
    windows = split_windows(runs, "train", runs.history, 5)
    first = make_windows(split.train, split.history, 5)
    second = make_windows(split2.train, split.history, 5)
    assert len(windows) == len(first) + len(second)
    tail = windows[len(first):]
    np.testing.assert_array_equal(tail, np.where(second >= 0, second + 160, -1))
    assert ((tail == -1) | (tail >= 160)).all()  # never run 1's volumes
    with pytest.raises(ValueError, match="TR"):
        other_tr = type(split)(train=split.train, validation=split.validation,
                               test=split.test, history=split.history, tr_s=1.0)
        concatenate_runs([(features, bold, split), (features, bold, other_tr)])


def test_one_model_across_runs_trains(tmp_path):
    """fit_samba on two concatenated runs: finite losses, HRFs per BOLD parcel, and a
    prediction of a third, unseen run from its own electrophysiology."""
    from samba_bids.training import predict_run

    runs = []
    for seed in (5, 6):
        data = simulate(seed=seed, n_src=5, n_bold=4, n_volumes=160)
        runs.append((wavelet_band_features(data["segments"], level=3), data["bold"],
                     data["split"]))
    features, bold, split = concatenate_runs(runs)
    fit = fit_samba(features, bold, split, np.zeros((5, 3)) + np.arange(5)[:, None],
                    np.zeros((4, 3)) + np.arange(4)[:, None],
                    Config(batch_size=8, **{**SETTINGS, "max_epochs": 3}))
    assert np.isfinite(fit.history[["train_loss", "val_loss"]].to_numpy()).all()
    # the best epoch's validation loss is the restored model's mean loss over the runs'
    # validation windows, each run's windows on their own (split_windows)
    windows = split_windows(split, "validation", split.history, fit.window_trs, tile=True)
    loss = evaluate_loss(fit.model, torch.as_tensor(features, dtype=torch.float32),
                         torch.as_tensor(bold, dtype=torch.float32), windows, split.history,
                         mse_weight=SETTINGS["mse_weight"], batch_size=8)
    assert loss == pytest.approx(fit.history["val_loss"].iloc[fit.best_epoch - 1], rel=1e-6)
    # one HRF per BOLD parcel, each learned on its own: they all start at SPM's canonical HRF,
    # so no two are alike after training; unit-sum kernels over the K + 1 taps of the history
    params = fit.model.hrf.params().detach()
    assert params.shape == (4, 6)
    assert all(not torch.equal(params[m], params[n]) for m in range(4) for n in range(m))
    kernels = fit.model.hrf.kernel(split.tr_s).detach()
    assert kernels.shape == (4, split.history + 1)
    torch.testing.assert_close(kernels.sum(dim=1), torch.ones(4))
    held_out = simulate(seed=7, n_src=5, n_bold=4, n_volumes=160)
    predicted = predict_run(fit.model, wavelet_band_features(held_out["segments"], level=3),
                            history=split.history, window_trs=fit.window_trs)
    assert predicted.shape == (4, 160) and np.isfinite(predicted).all()
