"""Evaluation of one model per participant across runs, and of models applied elsewhere.

Simulates participants with several paired runs and one EEG-only run each
(``samba-bids-simulate --runs 3 --ephys-only-runs 1``: the same planted HRFs and mixing for
every run and participant, new activity and noise per run), prepares every run with the
participant level's stages, and compares, per participant, on the same held-out volumes (each
run's test block of the blocked split):

- ``per-run``: today's single-run models (one SAMBA per run, blocked split inside it);
- ``participant, cv runs``: each run predicted by the fold model trained on the other runs
  (:func:`samba_bids.workflows.participant_model.train_participant`, ``--cv runs``);
- ``participant, cv blocks``: one model trained on the training blocks of every run;
- ``group (unseen)``: a model trained on every run of the other participants
  (leave-one-participant-out), applied to this participant;

each beside the ridge baseline fitted the same way, the oracle (the planted model applied to
the pipeline's own source estimates) and the perfect translator (the noiseless BOLD scored on
the same volumes). The EEG-only run's prediction (participant final model; group model) is
scored against the noiseless BOLD the simulator planted for it, over all its volumes. Paired
differences over participants with SEM; wall and CPU time of ``--cv runs`` vs ``blocks``.

Seeds: the evaluation dataset's seed (``--seed``, default 2026) was fixed before any result was
seen; development used seeds 0 (the demo) and 3 (the tests).

    python benchmarks/evaluate_runs.py --templates-dir ../shared/data/templates
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from samba_bids import simulate  # noqa: E402
from samba_bids.alignment import fitting_split  # noqa: E402
from samba_bids.bids.layout import collect_participants, index_dataset  # noqa: E402
from samba_bids.config import Config  # noqa: E402
from samba_bids.evaluation import simulation_ceilings  # noqa: E402
from samba_bids.metrics import pearson_r  # noqa: E402
from samba_bids.templates import find_templates_dir  # noqa: E402
from samba_bids.training import predict_run  # noqa: E402
from samba_bids.workflows import prepare_run  # noqa: E402
from samba_bids.workflows.inputs import prepare_ephys_only  # noqa: E402
from samba_bids.workflows.participant_model import train_participant  # noqa: E402
from samba_bids.workflows.translate import fit_forward_model, score_run  # noqa: E402

#: Where finished units are kept (in the repository: a later session resumes from them).
RESULTS = Path(__file__).parent / "results" / "evaluate_runs"


def median_r(predicted, reference, volumes=None):
    """Median over parcels of the Pearson r over ``volumes`` (all when None)."""
    if volumes is not None:
        predicted, reference = predicted[:, volumes], reference[:, volumes]
    return float(np.median(pearson_r(predicted, reference)))


def truth_of(bids, label, names):
    """The simulator's truth of a run: noiseless and noisy BOLD (M, V), planted HRFs, mixing."""
    subject = label.split("_")[0]
    folder = bids / "derivatives" / "truth" / subject / "func"
    out = {"dir": folder, "label": label,
           "parameters": json.loads((folder / f"{label}_desc-truth_parameters.json").read_text()),
           "hrf": pd.read_csv(folder / f"{label}_desc-truth_hrf.tsv", sep="\t"),
           "mixing": pd.read_csv(folder / f"{label}_desc-mixing_weights.tsv", sep="\t")}
    for kind in ("noiseless", "noisy"):
        frame = pd.read_csv(folder / f"{label}_desc-{kind}_timeseries.tsv", sep="\t")
        out[kind] = frame[[str(n) for n in names]].to_numpy().T
    return out


def oracle_prediction(inputs, truth):
    """The planted mixing and HRFs applied to the pipeline's own source estimates (M, V)."""
    from scipy.signal import fftconvolve

    params, step = truth["parameters"], simulate.DRIVE_STEP_S
    tr_s = params["RepetitionTime"]
    power = simulate.band_log_power(inputs.parcels.data, inputs.parcels.sfreq_hz, step)
    power = (power - power.mean(-1, keepdims=True)) / power.std(-1, keepdims=True)
    hrf = truth["hrf"]
    weights = simulate.mixing_matrix(truth["mixing"], list(inputs.parcels.names),
                                     list(hrf["parcel"]))
    kernels = simulate.hrf_kernels(hrf.iloc[:, 1:7].to_numpy(), step)
    drive = np.einsum("mnk,nkt->mt", weights, power)
    response = fftconvolve(drive, kernels, axes=-1)[:, : drive.shape[1]]
    onsets = params["FirstVolumeOnset"] + np.arange(params["NumberOfVolumes"]) * tr_s
    index = np.minimum(np.round((onsets + tr_s / 2) / step).astype(int), drive.shape[1] - 1)
    order = [list(hrf["parcel"]).index(n) for n in inputs.atlas.names]
    return response[order][:, index]


def timed(function, *args, **kwargs):
    """``(result, wall s, CPU s)`` of a call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def prepare(args, config):
    """Simulate (once) and prepare every participant's runs; returns a list of dicts."""
    templates_dir = find_templates_dir(args.templates_dir)
    bids = args.out_dir / (f"sim-{args.subjects}sub-{args.runs}runs-{args.duration:g}s-"
                           f"{args.channels}ch-seed{args.seed}")
    if not (bids / "derivatives" / "truth").is_dir():
        simulate.simulate_dataset(bids, templates_dir, duration_s=args.duration,
                                  n_channels=args.channels, n_subjects=args.subjects,
                                  spaces=("fsaverage5",), seed=args.seed, n_runs=args.runs,
                                  n_ephys_only_runs=1)
    config = dataclasses.replace(config, bids_dir=bids, templates_dir=templates_dir,
                                 volume_trigger="Volume", bold_space="fsaverage5")
    layout = index_dataset(bids, {"preproc": bids / "derivatives" / "preproc"},
                           args.out_dir / "work")
    people = []
    for participant in collect_participants(layout, bold_space="fsaverage5"):
        prepared = [(pair, prepare_run(pair, config, templates_dir))
                    for pair in participant.pairs]
        tr_s = prepared[0][1].tr_s
        eeg_only = [(run, prepare_ephys_only(run, config, templates_dir, tr_s))
                    for run in participant.ephys_only]
        people.append({"subject": participant.subject, "prepared": prepared,
                       "eeg_only": eeg_only})
        print(f"sub-{participant.subject}: {len(prepared)} paired runs of "
              f"{prepared[0][1].observed.shape[1]} volumes, {len(eeg_only)} EEG-only", flush=True)
    return bids, config, people


class UnitStore:
    """Finished units of the evaluation as JSON files, so that a stopped run resumes.

    One file per unit (a participant's per-participant schemes; a leave-one-out group fit),
    under ``folder`` (default ``benchmarks/results/evaluate_runs/<dataset>/``, kept in the
    repository): a rerun with the same arguments loads the finished units and computes the
    rest. Delete the folder to start again.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def get(self, unit: str, compute):
        path = self.folder / f"{unit}.json"
        if path.is_file():
            print(f"{unit}: read from {path}", flush=True)
            return json.loads(path.read_text())
        result = compute()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
        print(f"{unit}: done, saved to {path}", flush=True)
        return result


def evaluate_participant(person, config, bids, names) -> dict:
    """Per-run models and the participant model (--cv runs, blocks) on one participant:
    ``{"rows": [...], "costs": [...]}`` (the group columns are added by :func:`evaluate`)."""
    rows, costs, fits = [], [], {}
    prepared = person["prepared"]
    inputs = [i for _, i in prepared]
    # today: one model per run, blocked split inside it
    per_run, wall, cpu = timed(lambda: [fit_forward_model(config, [i], [i.split])
                                        for i in inputs])
    costs.append({"subject": person["subject"], "scheme": "per-run", "wall_s": wall,
                  "cpu_s": cpu})
    schemes = {"per-run": [score_run(config, m, i, i.split) for m, i in zip(per_run, inputs)]}
    for cv in ("runs", "blocks"):
        fit, wall, cpu = timed(train_participant, prepared, dataclasses.replace(config, cv=cv),
                               who=f"sub-{person['subject']}")
        costs.append({"subject": person["subject"], "scheme": f"participant, cv {cv}",
                      "wall_s": wall, "cpu_s": cpu})
        schemes[f"participant, cv {cv}"] = [run.scores for run in fit.scored]
        fits[cv] = fit
    for index, (pair, i) in enumerate(prepared):
        truth = truth_of(bids, pair.label, names)
        test = i.split.test
        bounds = simulation_ceilings(truth["noiseless"], truth["noisy"], i.observed, test)
        row = {"subject": person["subject"], "run": pair.label, "volumes": "test block",
               "oracle": median_r(oracle_prediction(i, truth), i.observed, test),
               "perfect": float(bounds["perfect_model_block"])}
        for scheme, scores in schemes.items():
            row[scheme] = median_r(scores[index].predicted, i.observed, test)
            row[f"ridge {scheme}"] = median_r(scores[index].ridge_predicted, i.observed, test)
        rows.append(row)
    for run, e in person["eeg_only"]:
        truth = truth_of(bids, run.label, names)
        row = {"subject": person["subject"], "run": run.label,
               "volumes": "all (EEG only, vs noiseless truth)", "perfect": 1.0}
        for cv in ("runs", "blocks"):
            final = fits[cv].final
            predicted = predict_run(final.fit.model, e.features, history=final.history,
                                    window_trs=final.fit.window_trs)
            row[f"participant, cv {cv}"] = median_r(predicted, truth["noiseless"])
            row[f"ridge participant, cv {cv}"] = median_r(final.ridge.predict(e.features),
                                                          truth["noiseless"])
        rows.append(row)
    return {"rows": rows, "costs": costs}


def evaluate_group(person, people, config, bids, names) -> dict:
    """The group model trained on every run of the other participants, applied to this one:
    ``{"columns": {run label: {...}}, "costs": [...]}``."""
    others = [(p, i) for q in people if q is not person for p, i in q["prepared"]]
    splits = [fitting_split(i.observed.shape[1], i.tr_s, hrf_support_s=config.hrf_support_s,
                            train_fraction=config.train_fraction,
                            validation_fraction=config.validation_fraction,
                            window_trs=config.window_trs) for _, i in others]
    group, wall, cpu = timed(fit_forward_model, config, [i for _, i in others], splits,
                             [p.label for p, _ in others])
    columns = {}
    for pair, i in person["prepared"]:
        scores = score_run(config, group, i, i.split)
        columns[pair.label] = {
            "group (unseen)": median_r(scores.predicted, i.observed, i.split.test),
            "ridge group (unseen)": median_r(scores.ridge_predicted, i.observed,
                                             i.split.test)}
    for run, e in person["eeg_only"]:
        truth = truth_of(bids, run.label, names)
        predicted = predict_run(group.fit.model, e.features, history=group.history,
                                window_trs=group.fit.window_trs)
        columns[run.label] = {
            "group (unseen)": median_r(predicted, truth["noiseless"]),
            "ridge group (unseen)": median_r(group.ridge.predict(e.features),
                                             truth["noiseless"])}
    return {"columns": columns, "costs": [{"subject": person["subject"],
                                           "scheme": "group (unseen)", "wall_s": wall,
                                           "cpu_s": cpu}]}


def evaluate(args):
    """Every model of the module docstring on every participant; returns (rows, costs).

    Unit by unit through :class:`UnitStore`: a stopped evaluation resumes where it was.
    """
    config = Config(max_epochs=args.max_epochs, seed=0, device="cpu", confounds="none")
    bids, config, people = prepare(args, config)
    names = list(people[0]["prepared"][0][1].atlas.names)
    store = UnitStore((args.results_dir or RESULTS / bids.name)
                      / f"max{args.max_epochs}epochs")
    rows, costs = [], []
    for person in people:
        done = store.get(f"sub-{person['subject']}_participant",
                         lambda person=person: evaluate_participant(person, config, bids,
                                                                    names))
        rows += done["rows"]
        costs += done["costs"]
    # the group model, leave-one-participant-out: every run of the others
    for person in people:
        done = store.get(f"sub-{person['subject']}_group",
                         lambda person=person: evaluate_group(person, people, config, bids,
                                                              names))
        for row in rows:
            row.update(done["columns"].get(row["run"], {}))
        costs += done["costs"]
    return pd.DataFrame(rows), pd.DataFrame(costs)


def paired(table, column, reference):
    """Mean over participants (runs averaged first) of ``column - reference``, SEM, n."""
    by_subject = table.groupby("subject")[[column, reference]].mean()
    diff = by_subject[column] - by_subject[reference]
    sem = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
    return float(diff.mean()), float(sem), int(len(diff))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/samba-bids-eval-runs"))
    parser.add_argument("--templates-dir", type=Path, default=None)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="paired runs per participant")
    parser.add_argument("--duration", type=float, default=600.0, help="each run, s")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="finished units (JSON), read on a rerun; default "
                             "benchmarks/results/evaluate_runs/<dataset>/max<N>epochs")
    parser.add_argument("--seed", type=int, default=2026,
                        help="the evaluation dataset (fixed before looking; development: 0, 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    table, costs = evaluate(args)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print(f"\n{args.subjects} participants x {args.runs} runs of {args.duration:g} s, "
          f"{args.channels} channels, max {args.max_epochs} epochs, seed {args.seed}; "
          f"{time.perf_counter() - start:.0f} s in all")
    print("\nMedian test r per run (paired runs: each run's test block; EEG-only: all volumes "
          "vs the noiseless truth):")
    print(table.round(3).to_string(index=False))
    paired_runs = table[table["volumes"] == "test block"]
    eeg_only = table[table["volumes"] != "test block"]
    print("\nPaired differences over participants (runs averaged first), mean +- SEM:")
    for what, frame, reference, columns in (
            ("paired runs", paired_runs, "per-run",
             ["participant, cv runs", "participant, cv blocks", "group (unseen)"]),
            ("EEG-only run", eeg_only, "participant, cv runs",
             ["participant, cv blocks", "group (unseen)"])):
        for column in columns:
            mean, sem, n = paired(frame, column, reference)
            print(f"  {what}: {column} - {reference}: {mean:+.3f} +- {sem:.3f} (n = {n})")
    print("\nMeans over participants:")
    print(table.groupby("volumes").mean(numeric_only=True).round(3).T.to_string())
    print("\nCost per participant (mean over participants):")
    summary = costs.groupby("scheme")[["wall_s", "cpu_s"]].mean()
    summary["ratio_to_blocks"] = summary["wall_s"] / summary.loc["participant, cv blocks",
                                                                  "wall_s"]
    print(summary.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
