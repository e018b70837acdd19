"""pybids indexing, run pairing, validation, derivative names and dataset_description."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from samba_bids.bids.derivatives import (
    atomic_path,
    derivative_path,
    group_derivative_path,
    parse_derivative_name,
    sidecar_path,
    write_dataset_description,
)
from samba_bids.bids.layout import (
    collect_pairs,
    default_derivatives,
    index_dataset,
    validate_dataset,
)
from samba_bids.errors import (
    DataError,
    EmptySelectionError,
    NoInputError,
    UsageError,
    ValidationError,
)

from .synthetic import make_dataset, tree_digest


@pytest.fixture(scope="module")
def two_space_dataset(tmp_path_factory, templates_dir):
    root = tmp_path_factory.mktemp("bids") / "ds"
    return make_dataset(root, templates_dir, subjects=("01", "02"), n_volumes=40,
                        spaces=("fsaverage5", "MNI152NLin6Asym"))


def _layout(root, tmp_path):
    return index_dataset(root, default_derivatives(root), tmp_path / "work")


def test_real_dataset_pairs_eeg_with_gifti(real_rest, tmp_path):
    before = tree_digest(real_rest)
    validate_dataset(real_rest)
    layout = _layout(real_rest, tmp_path)
    (pair,) = collect_pairs(layout, participant_label=["01"])
    assert pair.ephys_file.name == "sub-01_task-rest_eeg.vhdr"
    assert [f.name for f in pair.bold_files] == [
        "sub-01_task-rest_hemi-L_space-fsaverage5_bold.func.gii",
        "sub-01_task-rest_hemi-R_space-fsaverage5_bold.func.gii",
    ]
    assert pair.space == "fsaverage5" and pair.tr_s == 1.4
    assert pair.confounds_file.name == "sub-01_task-rest_desc-confounds_timeseries.tsv"
    assert pair.label == "sub-01_task-rest"
    assert tree_digest(real_rest) == before  # the input dataset is never written to


def test_space_choice(two_space_dataset, tmp_path):
    layout = _layout(two_space_dataset, tmp_path)
    with pytest.raises(UsageError, match="several spaces.*--bold-space"):
        collect_pairs(layout)
    pairs = collect_pairs(layout, bold_space="MNI152NLin6Asym")
    assert [p.entities["subject"] for p in pairs] == ["01", "02"]
    assert all(p.bold_files[0].name.endswith("desc-preproc_bold.nii.gz") for p in pairs)
    with pytest.raises(NoInputError, match="No BOLD run in space fsaverage"):
        collect_pairs(layout, bold_space="fsaverage")


def test_selection_errors(two_space_dataset, tmp_path):
    layout = _layout(two_space_dataset, tmp_path)
    with pytest.raises(EmptySelectionError, match="Participant label.*07"):
        collect_pairs(layout, participant_label=["07"], bold_space="fsaverage5")
    with pytest.raises(EmptySelectionError):
        collect_pairs(layout, task_label=["movie"], bold_space="fsaverage5")


def test_one_modality_missing(tmp_path, templates_dir):
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=30)
    shutil.rmtree(root / "derivatives" / "preproc" / "sub-01")
    with pytest.raises(NoInputError, match="sub-01 has EEG/MEG.*no preprocessed BOLD"):
        collect_pairs(_layout(root, tmp_path))
    root2 = make_dataset(tmp_path / "ds2", templates_dir, n_volumes=30)
    shutil.rmtree(root2 / "sub-01" / "eeg")
    with pytest.raises(NoInputError, match="no EEG/MEG recording"):
        collect_pairs(_layout(root2, tmp_path))


def test_missing_hemisphere(tmp_path, templates_dir):
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=30)
    next((root / "derivatives/preproc/sub-01/func").glob("*hemi-R*")).unlink()
    with pytest.raises(DataError, match="lacks the hemi-R GIFTI"):
        collect_pairs(_layout(root, tmp_path))


def test_validation(tmp_path, templates_dir):
    with pytest.raises(NoInputError):
        validate_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="dataset_description.json is missing"):
        validate_dataset(tmp_path / "empty")
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=30)
    validate_dataset(root)
    (root / "sub-01" / "eeg" / "notes.txt").write_text("x")
    with pytest.raises(ValidationError, match="notes.txt"):
        validate_dataset(root)


def test_derivative_names_follow_entity_order(tmp_path):
    ents = {"subject": "01", "session": "a", "task": "rest", "run": "2", "space": "fsaverage5"}
    path = derivative_path(tmp_path, ents, suffix="bold", extension=".func.gii", hemi="L",
                           desc="samba")
    assert path == (tmp_path / "sub-01/ses-a/func/"
                    "sub-01_ses-a_task-rest_run-2_hemi-L_space-fsaverage5_desc-samba_bold.func.gii")
    tsv = derivative_path(tmp_path, ents, suffix="timeseries", extension=".tsv", space=None,
                          atlas="Schaefer2018", seg="7n", scale=200, desc="samba")
    assert tsv.name == ("sub-01_ses-a_task-rest_run-2_atlas-Schaefer2018_seg-7n_scale-200_"
                        "desc-samba_timeseries.tsv")
    nii = derivative_path(tmp_path, {"subject": "01", "task": "rest"}, suffix="bold",
                          extension=".nii.gz", space="MNI152NLin6Asym", resolution="2",
                          desc="samba")
    assert nii.name == "sub-01_task-rest_space-MNI152NLin6Asym_res-2_desc-samba_bold.nii.gz"
    assert sidecar_path(path).name.endswith("_desc-samba_bold.json")
    assert sidecar_path(nii).name == "sub-01_task-rest_space-MNI152NLin6Asym_res-2_desc-samba_bold.json"
    with pytest.raises(ValueError, match="Unknown entities"):
        derivative_path(tmp_path, ents, suffix="bold", extension=".nii", colour="red")


def test_parse_derivative_name_inverts_derivative_path(tmp_path):
    ents = {"subject": "01", "session": "a", "task": "rest", "run": "2"}
    path = derivative_path(tmp_path, ents, suffix="boldmap", extension=".pscalar.nii",
                           space="fsLR", atlas="Schaefer2018", seg="7n", scale=200, desc="testr")
    parsed, suffix, extension = parse_derivative_name(path)
    assert parsed == {**ents, "space": "fsLR", "atlas": "Schaefer2018", "seg": "7n",
                      "scale": "200", "desc": "testr"}
    assert (suffix, extension) == ("boldmap", ".pscalar.nii")
    with pytest.raises(ValueError, match="colour-red"):
        parse_derivative_name("sub-01_colour-red_bold.nii.gz")


def test_group_names_have_no_subject(tmp_path):
    ents = {"subject": "01", "session": "a", "task": "rest", "space": "fsaverage5"}
    path = group_derivative_path(tmp_path, ents, suffix="boldmap", extension=".func.gii",
                                 hemi="L", desc="testrmean")
    assert path == tmp_path / "group" / ("task-rest_hemi-L_space-fsaverage5_desc-testrmean_"
                                         "boldmap.func.gii")
    with pytest.raises(ValueError, match="at least one entity"):
        group_derivative_path(tmp_path, {"subject": "01"}, suffix="metrics", extension=".tsv")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a" / "x.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_dataset_description_parallel_writers(tmp_path):
    out = tmp_path / "out"
    links = {"raw": tmp_path / "raw", "preproc": tmp_path / "raw" / "derivatives" / "preproc"}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: write_dataset_description(out, links), range(8)))
    content = json.loads((out / "dataset_description.json").read_text())
    assert content["DatasetType"] == "derivative"
    assert content["GeneratedBy"][0]["Name"] == "samba-bids"
    assert set(content["DatasetLinks"]) == {"raw", "preproc"}
    assert content["DatasetLinks"]["raw"].startswith("file://")
    assert "*_hrf.tsv" in (out / ".bidsignore").read_text()
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) == [
        ".bidsignore", "dataset_description.json"]
