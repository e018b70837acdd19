"""Resumable, atomic runs: a rerun skips what is done, a killed job leaves no partial file,
different settings into one OUTPUT_DIR are refused, parallel jobs share one OUTPUT_DIR."""

import json
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import pandas as pd
import pytest

from samba_bids.cli.run import main

from .bids_checks import check_derivatives
from .synthetic import make_dataset, tree_digest

EPOCHS = "5"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, templates_dir):
    root = tmp_path_factory.mktemp("resume") / "ds"
    return make_dataset(root, templates_dir, subjects=("01", "02", "03"), n_volumes=80,
                        tr_s=2.0)


def _argv(root, out, work, templates_dir, *extra):
    return [str(root), str(out), "participant", "--templates-dir", str(templates_dir),
            "-w", str(work), "--max-epochs", EPOCHS, *extra]


def _outputs(out, subject):
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns
            for p in sorted((out / f"sub-{subject}").rglob("*")) if p.is_file()}


def _readable(path):
    """Load an output with the reader its format needs (a partial file would fail)."""
    name = path.name
    if name.endswith((".tsv",)):
        pd.read_csv(path, sep="\t")
    elif name.endswith(".json"):
        json.loads(path.read_text())
    elif name.endswith((".nii.gz", ".func.gii", ".nii")):
        img = nib.load(path)
        img.get_fdata() if hasattr(img, "get_fdata") else img.agg_data()
    elif name.endswith(".pt"):
        import torch

        torch.load(path, weights_only=False)


def _start(argv, tmp_path):
    log = open(tmp_path / "job.log", "w")
    return subprocess.Popen([sys.executable, "-m", "samba_bids", *argv], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(predicate, proc, timeout_s=600):
    start = time.monotonic()
    while not predicate():
        assert proc.poll() is None, "the job ended before the point where it was to be killed"
        assert time.monotonic() - start < timeout_s, "the job never reached the kill point"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_job_resumes(dataset, tmp_path, templates_dir, sig):
    """sub-01 finishes; the job is killed while sub-02 trains; the rerun skips sub-01 (its
    files untouched), reuses sub-02's prepared inputs, and finishes with complete outputs."""
    out, work = tmp_path / "out", tmp_path / "work"
    argv = _argv(dataset, out, work, templates_dir, "--participant-label", "01", "02")
    before = tree_digest(dataset)
    proc = _start(argv, tmp_path)
    cache = work / "cache"
    _wait_for(lambda: list(cache.glob("sub-02_task-rest/*/inputs.pkl")), proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert code != 0
    if sig == signal.SIGTERM:
        assert code == 143  # 128 + SIGTERM, after cleaning up
        assert not list(out.rglob(".tmp-*")), "SIGTERM left temporary files behind"
    done_01 = _outputs(out, "01")
    assert any(name.endswith("_desc-samba_metrics.tsv") for name in done_01)
    for name in _outputs(out, "02"):  # whatever sub-02 got before the kill is whole
        if ".tmp-" not in name:
            _readable(out / name)
    assert main(argv) == 0
    assert _outputs(out, "01") == done_01  # skipped: not one file rewritten
    assert any(name.endswith("_desc-samba_metrics.tsv") for name in _outputs(out, "02"))
    check_derivatives(out)  # no temporary file left, every output with its sidecar
    assert tree_digest(dataset) == before


@pytest.mark.slow
def test_other_settings_refused_unless_overwrite(dataset, tmp_path, templates_dir, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(_argv(dataset, out, work, templates_dir, "--participant-label", "01")) == 0
    first = _outputs(out, "01")
    other = [str(dataset), str(out), "participant", "--templates-dir", str(templates_dir),
             "-w", str(work), "--max-epochs", "3", "--participant-label", "01"]
    capsys.readouterr()
    assert main(other) == 64
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_epochs" in err[0] and "--overwrite" in err[0]
    assert _outputs(out, "01") == first  # refused before touching anything
    # another participant with the same settings is welcome (an array task of the cohort)
    assert main(_argv(dataset, out, work, templates_dir, "--participant-label", "02")) == 0
    assert main(other + ["--overwrite"]) == 0
    model = json.loads(next((out / "sub-01" / "model").glob("*_desc-samba_model.json"))
                       .read_text())
    assert model["Config"]["max_epochs"] == 3
    settings = json.loads((out / "logs" / "config.json").read_text())["Settings"]
    assert settings["max_epochs"] == 3


@pytest.mark.slow
def test_three_parallel_jobs_one_output_dir(dataset, tmp_path, templates_dir):
    """Three participant-level processes (one per participant, one shared work directory)
    write into one OUTPUT_DIR at once: every output intact, one valid dataset_description."""
    out, work = tmp_path / "out", tmp_path / "work"
    procs = []
    for subject in ("01", "02", "03"):
        log = open(tmp_path / f"job-{subject}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "samba_bids",
             *_argv(dataset, out, work, templates_dir, "--participant-label", subject)],
            stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait(timeout=900) for p in procs]
    assert codes == [0, 0, 0], [(tmp_path / f"job-{s}.log").read_text()[-2000:]
                                for s in ("01", "02", "03")]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert len(list(out.glob("dataset_description*"))) == 1
    for subject in ("01", "02", "03"):
        files = _outputs(out, subject)
        assert any(n.endswith("_desc-samba_metrics.tsv") for n in files)
        for name in files:
            _readable(out / name)
        assert (out / f"sub-{subject}.html").is_file()
    # each job indexed the dataset into its own pybids database
    assert len(list((work / "pybids_db").iterdir())) == 3
    check_derivatives(out)


def test_settings_added_later_compare_at_their_default(tmp_path):
    """An OUTPUT_DIR made by an older version lacks settings added since: at their default they
    are accepted, set otherwise they are refused like any other change."""
    from samba_bids.config import Config
    from samba_bids.errors import UsageError
    from samba_bids.workflows import record_config

    config = Config(output_dir=tmp_path / "out")
    path = record_config(config)
    stored = json.loads(path.read_text())
    del stored["Settings"]["early_stopping"]  # as written before the setting existed
    path.write_text(json.dumps(stored))
    assert record_config(config) == path
    with pytest.raises(UsageError, match=r"early_stopping \('loss' -> 'validation-r'\)"):
        record_config(Config(output_dir=tmp_path / "out", early_stopping="validation-r"))
