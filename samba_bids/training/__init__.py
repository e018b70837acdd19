"""Training SAMBA: windows and splits, the fit loop, the reverse direction, distributed helpers.

- :mod:`~samba_bids.training.windows`: windows of TR segments inside a block
  (:func:`make_windows`, :func:`reverse_windows`), runs on one volume axis
  (:func:`concatenate_runs`, :class:`RunsSplit`, :func:`split_windows`,
  :func:`split_reverse_windows`).
- :mod:`~samba_bids.training.fit`: :func:`fit_samba`, :func:`predict_run`,
  :func:`evaluate_loss`, the ablations, devices and seeds.
- :mod:`~samba_bids.training.loop`: the epoch loop both directions share (AdamW, early
  stopping on the validation block).
- :mod:`~samba_bids.training.reverse`: :func:`fit_reverse`, :func:`predict_reverse`
  (BOLD -> source-parcel band power).
- :mod:`~samba_bids.training.distributed`: torch.distributed process group and DDP.
- :mod:`~samba_bids.training.crossval`: cross-validation of a participant's model by run or
  by blocks (:func:`resolve_cv`, :func:`run_folds`).
"""

from .crossval import Fold, resolve_cv, run_folds
from .distributed import distributed_world, init_distributed
from .fit import (
    ABLATIONS,
    MAX_GRAD_NORM,
    FitResult,
    ablation_configs,
    evaluate_loss,
    fit_graph_ridge,
    fit_samba,
    predict_run,
    resolve_device,
    seed_everything,
)
from .reverse import fit_reverse, predict_reverse
from .windows import (
    RunsSplit,
    concatenate_runs,
    make_windows,
    reverse_windows,
    split_reverse_windows,
    split_windows,
)
from .windows import (
    _batch as _batch,  # benchmarks/bench_training.py imports it from here
)

__all__ = [
    "ABLATIONS",
    "MAX_GRAD_NORM",
    "FitResult",
    "Fold",
    "RunsSplit",
    "ablation_configs",
    "concatenate_runs",
    "distributed_world",
    "evaluate_loss",
    "fit_graph_ridge",
    "fit_reverse",
    "fit_samba",
    "init_distributed",
    "make_windows",
    "predict_reverse",
    "predict_run",
    "resolve_device",
    "resolve_cv",
    "reverse_windows",
    "split_reverse_windows",
    "run_folds",
    "seed_everything",
    "split_windows",
]
