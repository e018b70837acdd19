"""Cross-validation of a participant's model across runs (DESIGN.md, "Splits").

``runs``: each paired run is the test run of one fold, the model of that fold trained on the
other runs (validation from their last block); ``blocks``: one model trained on the training
blocks of every run and scored on each run's test block. After ``runs``, a final model is
fitted on every run; after ``blocks``, the one model is the final model.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import CHOICES, check_option
from ..errors import UsageError

#: Paired runs from which ``--cv auto`` cross-validates by run.
AUTO_RUNS_FROM = 3


def resolve_cv(cv: str, n_runs: int, *, who: str = "the participant") -> str:
    """The cross-validation scheme for ``n_runs`` paired runs.

    Parameters
    ----------
    cv : {'auto', 'runs', 'blocks'}
        ``auto``: ``runs`` with :data:`AUTO_RUNS_FROM` or more paired runs, else ``blocks``.
    n_runs : int
        Paired runs of the participant.
    who : str
        Named in the error message.

    Returns
    -------
    {'runs', 'blocks'}

    Raises
    ------
    UsageError
        If ``cv`` is not a choice, or ``runs`` is asked for with fewer than 2 paired runs.
    """
    check_option("cv", cv, CHOICES["cv"])
    if cv == "auto":
        return "runs" if n_runs >= AUTO_RUNS_FROM else "blocks"
    if cv == "runs" and n_runs < 2:
        raise UsageError(f"--cv runs needs at least 2 paired runs; {who} has {n_runs}. Use "
                         "--cv blocks (or auto).")
    return cv


@dataclass(frozen=True)
class Fold:
    """One fold: the runs (indices) that train its model and the run it tests."""

    number: int  # 1-based
    train_runs: tuple
    test_run: int | None  # None: the blocked split (every run's test block)


def run_folds(n_runs: int, cv: str) -> list[Fold]:
    """The folds of ``cv`` (``'runs'`` or ``'blocks'``) over ``n_runs`` runs.

    Returns
    -------
    list of Fold
        ``runs``: ``n_runs`` folds, fold ``k`` tests run ``k - 1`` and trains on the others;
        ``blocks``: one fold that trains on every run.
    """
    every = tuple(range(n_runs))
    if cv == "blocks":
        return [Fold(number=1, train_runs=every, test_run=None)]
    return [Fold(number=k + 1, train_runs=tuple(i for i in every if i != k), test_run=k)
            for k in every]
