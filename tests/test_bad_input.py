"""Bad input through the command line (issue 5): each case gets one line on stderr
(``samba-bids: error: ...``) naming the offending file or option and the fix, its BEP027 exit
code, nothing written into BIDS_DIR, and the outputs an earlier run wrote for another
participant into the same OUTPUT_DIR left untouched.

One dataset (sub-01, sub-02) is made per module; sub-01 is processed once into the usual place,
``BIDS_DIR/derivatives/samba-bids`` (which must work). Each case copies that dataset, breaks
sub-02 and runs ``--participant-label 02`` into the same OUTPUT_DIR. Most cases fail before
training; none trains.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from samba_bids.cli.run import main

from .synthetic import add_gradient_artifact, make_dataset, make_eeg_raw, tree_digest

N_VOLUMES = 50
TR_S = 2.0
OUT = Path("derivatives") / "samba-bids"
FUNC = Path("derivatives") / "preproc" / "sub-02" / "func"
EEG = Path("sub-02") / "eeg"


# --------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def processed(tmp_path_factory, templates_dir):
    """A two-participant dataset whose sub-01 went through the participant level into
    BIDS_DIR/derivatives/samba-bids (one epoch): ``(root, exit code, digest before)``."""
    base = tmp_path_factory.mktemp("bad_input")
    root = make_dataset(base / "ds", templates_dir, subjects=("01", "02"),
                        n_volumes=N_VOLUMES, tr_s=TR_S)
    before = tree_digest(root)
    code = main([str(root), str(root / OUT), "participant", "--participant-label", "01",
                 "--templates-dir", str(templates_dir), "-w", str(base / "work"),
                 "--max-epochs", "1"])
    return root, code, before


@pytest.fixture
def dataset(processed, tmp_path):
    """A fresh copy of the processed dataset (sub-02 is the one to break)."""
    root, code, _ = processed
    assert code == 0
    copy = tmp_path / "ds"
    shutil.copytree(root, copy, symlinks=True)
    return copy


def _input_digest(root, output_dir):
    """Digest of BIDS_DIR without the output folder (when it lies inside)."""
    out = Path(output_dir).resolve()
    root = Path(root).resolve()
    skip = out.relative_to(root).as_posix() + "/" if root in out.parents else None
    return {k: v for k, v in tree_digest(root).items() if not (skip and k.startswith(skip))}


def _outputs_of_sub01(output_dir):
    output_dir = Path(output_dir)
    digest = {f"sub-01/{k}": v for k, v in tree_digest(output_dir / "sub-01").items()}
    html = output_dir / "sub-01.html"
    if html.is_file():
        digest["sub-01.html"] = (html.stat().st_size, html.stat().st_mtime_ns)
    return digest


def run_bad(capsys, root, output_dir, templates_dir, *extra, work=None, label="02"):
    """Run the CLI on bad input; check the invariants; return (exit code, error message)."""
    root, output_dir = Path(root), Path(output_dir)
    inputs = _input_digest(root, output_dir) if root.is_dir() else {}
    others = _outputs_of_sub01(output_dir) if output_dir.is_dir() else {}
    failed = sorted(output_dir.glob("sub-02*")) if output_dir.is_dir() else []
    earlier = capsys.readouterr().out  # kept, so that pytest -rP shows every message
    argv = [str(root), str(output_dir), "participant", "--templates-dir", str(templates_dir),
            "-w", str(work or root.parent / "work"), "--max-epochs", "1", *extra]
    if label:
        argv += ["--participant-label", label]
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "samba-bids: error" in line]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0] and errors[0].startswith("samba-bids: error: "), err
    if root.is_dir():
        assert _input_digest(root, output_dir) == inputs, "BIDS_DIR was written to"
    if others:
        assert _outputs_of_sub01(output_dir) == others, "sub-01's outputs changed"
    if output_dir.is_dir():  # nothing of the failed participant (no partial output)
        assert sorted(output_dir.glob("sub-02*")) == failed
    message = errors[0][len("samba-bids: error: "):]
    print(f"{earlier}exit {code}: {message}", end="\n")  # shown by pytest -rP
    return code, message


def _rewrite_gifti(path, *, volumes=None, transform=None, drop_timestep=False):
    """Rewrite a BOLD GIFTI: keep ``volumes`` arrays, map the (vertices, volumes) data."""
    import nibabel as nib

    img = nib.load(str(path))
    data = np.stack([d.data for d in img.darrays], axis=1)
    if volumes is not None:
        data = data[:, :volumes]
    if transform is not None:
        data = transform(data)
    meta = dict(img.meta)
    if drop_timestep:
        meta.pop("TimeStep", None)
    darrays = [nib.gifti.GiftiDataArray(col.astype(np.float32),
                                        intent="NIFTI_INTENT_TIME_SERIES",
                                        datatype="NIFTI_TYPE_FLOAT32") for col in data.T]
    nib.save(nib.GiftiImage(darrays=darrays, meta=nib.gifti.GiftiMetaData(meta)), str(path))


def _both_hemis(root, **kwargs):
    for hemi in ("L", "R"):
        _rewrite_gifti(root / FUNC / f"sub-02_task-rest_hemi-{hemi}_space-fsaverage5_bold.func.gii",
                       **kwargs)


def _replace_recording(root, fmt, tmp_path, shared_data):
    """Replace sub-02's BrainVision EEG with an EDF EEG (synthetic, written here) or a FIF
    MEG recording (the real MNE sample file; BIDS stores EEG as FIF only inside MEG)."""
    import mne
    import mne_bids

    shutil.rmtree(root / EEG)
    if fmt == "EDF":
        source = tmp_path / "rec.edf"
        _write_edf(source, make_eeg_raw(N_VOLUMES * TR_S + 2, seed=2))
        raw = mne.io.read_raw_edf(source, preload=False, verbose=False)
        datatype = "eeg"
    else:
        raw = mne.io.read_raw_fif(shared_data / "recordings" / "meg" /
                                  "sample_audvis_trunc_raw_sss.fif", verbose=False)
        datatype = "meg"
    path = mne_bids.BIDSPath(subject="02", task="rest", root=root, datatype=datatype)
    mne_bids.write_raw_bids(raw, path, overwrite=True, verbose=False)
    (file,) = (root / "sub-02" / datatype).glob(f"*_{datatype}.{fmt.lower()}")
    return file


def _write_edf(path, raw):
    """A plain EDF file (16-bit, one-second records) of ``raw``'s EEG, written by hand
    (neither pyedflib nor edfio is needed)."""
    data = raw.get_data() * 1e6  # uV
    sfreq = int(raw.info["sfreq"])
    n_records = data.shape[1] // sfreq
    data = data[:, : n_records * sfreq]
    n_ch = data.shape[0]
    pmin, pmax = float(data.min()) - 1, float(data.max()) + 1
    digital = np.round((data - pmin) / (pmax - pmin) * 65535 - 32768).astype("<i2")

    def field(value, width):
        return str(value)[:width].ljust(width).encode("ascii")

    header = b"".join([
        field(0, 8), field("X X X X", 80), field("Startdate 01-JAN-2020 X X X", 80),
        field("01.01.20", 8), field("00.00.00", 8), field(256 * (n_ch + 1), 8), field("", 44),
        field(n_records, 8), field(1, 8), field(n_ch, 4),
    ])
    columns = [
        ([f"EEG {n}" for n in raw.ch_names], 16), (["AgAgCl"] * n_ch, 80), (["uV"] * n_ch, 8),
        ([f"{pmin:.2f}"] * n_ch, 8), ([f"{pmax:.2f}"] * n_ch, 8), (["-32768"] * n_ch, 8),
        (["32767"] * n_ch, 8), ([""] * n_ch, 80), ([sfreq] * n_ch, 8), ([""] * n_ch, 32),
    ]
    header += b"".join(field(v, width) for values, width in columns for v in values)
    records = digital.reshape(n_ch, n_records, sfreq).transpose(1, 0, 2)  # record-major
    path.write_bytes(header + records.tobytes())


def _truncate(path, keep=0.5):
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def _mount(target, options):
    """Mount a tmpfs at ``target`` (root in a container that allows it); False when refused."""
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                            capture_output=True, check=False)
    return result.returncode == 0


@contextlib.contextmanager
def _mounted(target, options):
    mounted = _mount(target, options)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(target)], check=False)


# --------------------------------------------------------------------------------------------
# the usual output place works; the location checks


def test_output_under_bids_derivatives_works(processed):
    """BIDS_DIR/derivatives/samba-bids is the usual place: the run succeeds and writes
    nothing into BIDS_DIR outside it."""
    root, code, before = processed
    assert code == 0
    out = root / OUT
    assert (out / "dataset_description.json").is_file()
    assert list((out / "sub-01" / "func").glob("*_desc-samba_bold.func.gii"))
    assert _input_digest(root, out) == before


def test_not_a_bids_folder(tmp_path, templates_dir, capsys):
    folder = tmp_path / "notbids"
    (folder / "sub-01").mkdir(parents=True)
    code, message = run_bad(capsys, folder, tmp_path / "out", templates_dir)
    assert code == 16
    assert "dataset_description.json is missing" in message and str(folder) in message
    assert "--skip-bids-validation" in message
    assert not (tmp_path / "out").exists()


def test_bids_dir_missing(tmp_path, templates_dir, capsys):
    code, message = run_bad(capsys, tmp_path / "nowhere", tmp_path / "out", templates_dir)
    assert code == 66
    assert str(tmp_path / "nowhere") in message and "pass a BIDS dataset" in message


@pytest.mark.parametrize("where", [".", "sub-01/out", "code/samba", "derivatives",
                                   "derivatives/preproc", "derivatives/preproc/samba"])
def test_output_inside_the_input_dataset(dataset, tmp_path, templates_dir, capsys, where):
    """OUTPUT_DIR equal to BIDS_DIR, inside it outside derivatives/, derivatives/ itself, or
    (inside) an input derivatives folder: exit 64 before anything is read or written."""
    out = (dataset / where).resolve()
    before = tree_digest(dataset)
    code, message = run_bad(capsys, dataset, out, templates_dir, work=tmp_path / "work")
    assert code == 64
    assert tree_digest(dataset) == before
    assert message.startswith("OUTPUT_DIR") and str(out) in message
    assert "never writes" in message or "put it under" in message or "its own" in message
    assert str(dataset.resolve() / OUT) in message  # the usual place is suggested
    assert not (tmp_path / "work").exists()


# --------------------------------------------------------------------------------------------
# selecting participants


def test_unknown_participant_label(dataset, templates_dir, capsys):
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir, label="09")
    assert code == 18
    assert "09" in message and "01, 02" in message and "--participant-label" in message


def test_participant_with_eeg_but_no_bold(dataset, templates_dir, capsys):
    shutil.rmtree(dataset / FUNC.parent)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 66
    assert "sub-02_task-rest_eeg.vhdr" in message and "no preprocessed BOLD" in message
    assert "-d PATH" in message


def test_participant_with_bold_but_no_eeg(dataset, templates_dir, capsys):
    shutil.rmtree(dataset / "sub-02")
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 66
    assert "sub-02" in message and "no EEG/MEG recording" in message
    assert "sub-02_task-rest_hemi-L_space-fsaverage5_bold.func.gii" in message


def test_bold_in_an_unsupported_space(dataset, templates_dir, capsys):
    for path in sorted((dataset / FUNC).glob("*space-fsaverage5*")):
        path.rename(path.with_name(path.name.replace("fsaverage5", "fsnative")))
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 64
    assert "fsnative" in message and "sub-02_task-rest_eeg.vhdr" in message
    assert "fsaverage5" in message  # the supported spaces are listed


# --------------------------------------------------------------------------------------------
# unreadable files


def test_truncated_brainvision(dataset, templates_dir, capsys):
    _truncate(dataset / EEG / "sub-02_task-rest_eeg.eeg", keep=0.5003)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_eeg.eeg" in message and "truncated" in message
    assert "copy it again" in message


def test_corrupt_brainvision_header(dataset, templates_dir, capsys):
    vhdr = dataset / EEG / "sub-02_task-rest_eeg.vhdr"
    vhdr.write_bytes(b"\x00\xff garbage \x00" * 40)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_eeg.vhdr" in message and "BrainVision" in message
    assert "re-export or re-copy" in message


@pytest.mark.parametrize("fmt", ["EDF", "FIF"])
def test_truncated_edf_and_fif(dataset, templates_dir, capsys, tmp_path, shared_data, fmt):
    path = _replace_recording(dataset, fmt, tmp_path, shared_data)
    _truncate(path, keep=0.4)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert path.name in message and fmt in message
    assert "truncated" in message


def test_corrupt_fif(dataset, templates_dir, capsys, tmp_path, shared_data):
    path = _replace_recording(dataset, "FIF", tmp_path, shared_data)
    with open(path, "r+b") as f:  # overwrite the file's first tags
        f.write(os.urandom(64))
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert path.name in message and "FIF" in message and "re-export or re-copy" in message


def test_truncated_gifti(dataset, templates_dir, capsys):
    path = dataset / FUNC / "sub-02_task-rest_hemi-L_space-fsaverage5_bold.func.gii"
    _truncate(path, keep=0.5)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert path.name in message and "GIFTI" in message and "re-export" in message


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_truncated_or_corrupt_nifti(dataset, templates_dir, capsys, damage):
    import nibabel as nib

    for path in (dataset / FUNC).glob("*fsaverage5*"):
        path.unlink()
    rng = np.random.default_rng(0)
    data = (100 + rng.standard_normal((12, 14, 12, N_VOLUMES))).astype(np.float32)
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-48, -60, -40]
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = TR_S
    path = dataset / FUNC / "sub-02_task-rest_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz"
    nib.save(img, path)
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"RepetitionTime": TR_S, "TaskName": "rest"}))
    if damage == "truncate":
        _truncate(path, keep=0.5)
    else:
        raw = bytearray(path.read_bytes())
        raw[: 200] = os.urandom(200)  # the gzip header and the NIfTI header
        path.write_bytes(bytes(raw))
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert path.name in message and "re-export" in message
    assert ("truncated or corrupt" if damage == "truncate" else "not a readable NIfTI") in message


# --------------------------------------------------------------------------------------------
# timing


def test_repetition_time_missing(dataset, templates_dir, capsys):
    sidecar = dataset / FUNC / "sub-02_task-rest_space-fsaverage5_bold.json"
    sidecar.write_text(json.dumps({"TaskName": "rest"}))
    _both_hemis(dataset, drop_timestep=True)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_hemi-L_space-fsaverage5_bold.func.gii" in message
    assert "RepetitionTime" in message and "--repetition-time" in message


def test_volume_trigger_count_differs_from_volumes(dataset, templates_dir, capsys):
    events = dataset / EEG / "sub-02_task-rest_events.tsv"
    lines = events.read_text().splitlines()
    events.write_text("\n".join(lines[:-3]) + "\n")  # three volume markers fewer
    # another OUTPUT_DIR: the one of sub-01 was made without --volume-trigger
    code, message = run_bad(capsys, dataset, dataset.parent / "out", templates_dir,
                            "--volume-trigger", "Volume")
    assert code == 65
    assert "sub-02_task-rest_eeg.vhdr" in message
    assert f"{N_VOLUMES - 3} 'Volume' volume triggers" in message
    assert f"{N_VOLUMES} volumes" in message and "trim" in message


def test_recording_shorter_than_the_bold_run(dataset, templates_dir, capsys):
    """EEG of 12 s against 50 volumes of 2 s: far less than the run (and than one window)."""
    import mne_bids

    raw = make_eeg_raw(12.0, seed=3)
    path = mne_bids.BIDSPath(subject="02", task="rest", root=dataset, datatype="eeg")
    mne_bids.write_raw_bids(raw, path, format="BrainVision", allow_preload=True,
                            overwrite=True, verbose=False)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_eeg.vhdr" in message and "covers only" in message
    assert "--volume-trigger" in message


def test_bold_run_shorter_than_one_window(dataset, templates_dir, capsys):
    """20 volumes: fewer than the two 16-volume gaps plus the three blocks need."""
    _both_hemis(dataset, volumes=20)
    confounds = dataset / FUNC / "sub-02_task-rest_desc-confounds_timeseries.tsv"
    confounds.write_text("\n".join(confounds.read_text().splitlines()[:21]) + "\n")
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_hemi-L_space-fsaverage5_bold.func.gii" in message
    assert "20 volumes" in message and "too few" in message and "needed" in message


def _scanner_eeg(dataset, *, sfreq_hz=1000.0, markers="even"):
    """Replace sub-02's EEG by one recorded in the scanner (gradient artefact 100 x the EEG,
    first volume at 1 s): volume markers evenly spaced, one 20 ms late, or none."""
    import mne
    import mne_bids

    shutil.rmtree(dataset / EEG)  # MNE-BIDS would keep the old events.tsv
    raw = make_eeg_raw(N_VOLUMES * TR_S + 3, sfreq_hz=sfreq_hz, seed=5)
    add_gradient_artifact(raw, N_VOLUMES, TR_S, first_s=1.0)
    onsets = 1.0 + np.arange(N_VOLUMES) * TR_S
    if markers == "late":
        onsets[10] += 0.02
    if markers != "none":
        raw.set_annotations(mne.Annotations(onsets, 0.0, "Volume"))
    path = mne_bids.BIDSPath(subject="02", task="rest", root=dataset, datatype="eeg")
    mne_bids.write_raw_bids(raw, path, format="BrainVision", allow_preload=True,
                            overwrite=True, verbose=False)


def test_scanner_eeg_with_uneven_volume_markers(dataset, templates_dir, capsys):
    _scanner_eeg(dataset, markers="late")
    code, message = run_bad(capsys, dataset, dataset.parent / "out", templates_dir,
                            "--volume-trigger", "Volume")
    assert code == 65
    assert "sub-02_task-rest_eeg" in message and "not evenly spaced" in message
    assert "between markers 10 and 11: 2.0200 s" in message and "tolerance 1 sample = 1 ms" in message
    assert "missing or extra markers" in message and "-d" in message


def test_scanner_eeg_without_volume_markers(dataset, templates_dir, capsys):
    _scanner_eeg(dataset, markers="none")
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_eeg" in message and "gradient artefact is present" in message
    assert "no volume marker was found" in message and "--volume-trigger" in message


def test_scanner_eeg_sampled_too_slowly(dataset, templates_dir, capsys):
    _scanner_eeg(dataset, sfreq_hz=500.0)
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_eeg" in message and "500 Hz" in message
    assert "too low to resolve the MR gradient artefact" in message and "1000 Hz" in message


# --------------------------------------------------------------------------------------------
# values


def _eeg_samples(root):
    """sub-02's BrainVision samples as a writable (n_samples, n_channels) float32 memmap."""
    n_channels = int(re.search(r"NumberOfChannels=(\d+)",
                               (root / EEG / "sub-02_task-rest_eeg.vhdr").read_text()).group(1))
    return np.memmap(root / EEG / "sub-02_task-rest_eeg.eeg", dtype="<f4",
                     mode="r+").reshape(-1, n_channels)


def test_nan_channel(dataset, templates_dir, capsys):
    samples = _eeg_samples(dataset)
    samples[1000:1100, 3] = np.nan
    samples.flush()
    del samples
    channel = (dataset / EEG / "sub-02_task-rest_channels.tsv").read_text().splitlines()[4]
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_eeg" in message and channel.split("\t")[0] in message
    assert "NaN" in message and "channels.tsv" in message


def test_flat_channels(dataset, templates_dir, capsys):
    samples = _eeg_samples(dataset)
    samples[:] = 0.0
    samples.flush()
    del samples
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_eeg" in message and "flat" in message


@pytest.mark.parametrize("kind", ["nan", "flat"])
def test_nan_or_flat_bold_parcels(dataset, templates_dir, capsys, kind):
    """Every parcel NaN (only the medial wall holds numbers) or constant over time."""
    from samba_bids.templates import surface_atlas

    labels, _ = surface_atlas(templates_dir, "fsaverage5", 200)

    def damage(data, hemi):
        inside = labels[hemi] > 0
        data = data.copy()
        data[inside] = np.nan if kind == "nan" else 100.0
        return data

    for hemi, key in (("L", "lh"), ("R", "rh")):
        _rewrite_gifti(dataset / FUNC / f"sub-02_task-rest_hemi-{hemi}_space-fsaverage5_bold.func.gii",
                       transform=lambda d, key=key: damage(d, key))
    code, message = run_bad(capsys, dataset, dataset / OUT, templates_dir)
    assert code == 65
    assert "sub-02_task-rest_hemi-L_space-fsaverage5_bold.func.gii" in message
    assert ("no data" if kind == "nan" else "flat") in message
    assert "200 of 200 parcels" in message


# --------------------------------------------------------------------------------------------
# templates


@pytest.mark.parametrize("missing", [
    "fsaverage5/label/rh.Schaefer2018_200Parcels_7Networks_order.annot",  # the BOLD atlas
    "fsaverage5/label/lh.Schaefer2018_100Parcels_7Networks_order.annot",  # the source atlas
])
def test_atlas_missing_from_templates(dataset, templates_dir, capsys, tmp_path, missing):
    templates = tmp_path / "templates"
    shutil.copytree(templates_dir, templates)
    (templates / missing).unlink()
    code, message = run_bad(capsys, dataset, dataset / OUT, templates)
    assert code == 66
    assert str(templates / missing) in message and "templates folder" in message


# --------------------------------------------------------------------------------------------
# output folder not writable


def test_output_dir_not_writable(dataset, templates_dir, capsys, tmp_path, monkeypatch):
    """A read-only file system (tmpfs mounted read-only; monkeypatched where mounting is not
    allowed) and a file where a folder is expected: exit 73 before any work."""
    readonly = tmp_path / "readonly"
    with _mounted(readonly, "ro,size=1m") as mounted:
        if not mounted:
            if os.geteuid() != 0:
                readonly.chmod(0o555)
            else:
                real_access = os.access
                monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) ==
                                    readonly else real_access(p, mode, **kw))
        code, message = run_bad(capsys, dataset, readonly / "out", templates_dir,
                                work=tmp_path / "work")
        assert code == 73
        assert str(readonly / "out") in message and "not writable" in message
        assert "choose a writable OUTPUT_DIR" in message
        assert not (tmp_path / "work").exists()  # refused before any work
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    code, message = run_bad(capsys, dataset, blocker / "out", templates_dir,
                            work=tmp_path / "work")
    assert code == 73
    assert str(blocker) in message and "not a folder" in message and "another OUTPUT_DIR" in message


def test_no_disk_space(dataset, templates_dir, capsys, tmp_path, monkeypatch):
    """A full file system (a tiny tmpfs filled up; monkeypatched where mounting is not
    allowed): exit 73, 'disk is full', the folder named, no partial file left."""
    full = tmp_path / "full"
    with _mounted(full, "size=64k") as mounted:
        if mounted:
            with contextlib.suppress(OSError), open(full / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        else:
            real_write_text = Path.write_text

            def write_text(self, *args, **kwargs):
                if full in self.parents:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
                return real_write_text(self, *args, **kwargs)

            monkeypatch.setattr(Path, "write_text", write_text)
        out = full / "out"
        code, message = run_bad(capsys, dataset, out, templates_dir)
        assert code == 73
        assert "disk is full" in message and str(out) in message
        assert not [p for p in out.rglob("*") if p.is_file() and p.name != ".dataset_description.json.lock"]


# --------------------------------------------------------------------------------------------
# a bug


def test_unexpected_error_is_one_line_with_the_traceback_in_the_log(tmp_path, monkeypatch,
                                                                     capsys, caplog):
    """An exception that is not a bad-input error (a bug) exits 1 with one line that says how
    to get the traceback; with -vv the log holds it."""
    import logging

    import samba_bids.workflows

    def broken(config):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(samba_bids.workflows, "run", broken)
    with caplog.at_level(logging.DEBUG, logger="samba_bids"):
        code = main([str(tmp_path), str(tmp_path / "out"), "participant", "-vv"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["samba-bids: error: unexpected RuntimeError: boom second line "
                     "(rerun with -vv for the traceback)"]
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
