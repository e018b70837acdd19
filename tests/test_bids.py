"""pybids indexing, run pairing, validation, derivative names and dataset_description."""

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from samba_bids.bids.derivatives import (
    ENTITY_ORDER,
    GROUP_FOLDER,
    NONSTANDARD,
    atomic_path,
    derivative_path,
    group_derivative_path,
    output_path,
    parse_derivative_name,
    record_writes,
    sidecar_path,
    write_dataset_description,
    write_output,
)
from samba_bids.bids.layout import (
    collect_pairs,
    default_derivatives,
    index_dataset,
    validate_dataset,
)
from samba_bids.bids.outputs import OUTPUTS, bidsignore_patterns
from samba_bids.errors import (
    CantCreateError,
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


# --- the table of outputs (samba_bids.bids.outputs) and the names it makes -------------------

#: Entities of a BOLD run as collect_pairs gives them, per input format (grid extension).
_RUN = {"subject": "01", "session": "a", "task": "rest", "acquisition": "hi", "run": "2"}
_GRIDS = {".func.gii": {"space": "fsaverage5"},
          ".nii.gz": {"space": "MNI152NLin6Asym", "resolution": "2"},
          ".dtseries.nii": {"space": "fsLR", "density": "91k"},
          ".ptseries.nii": {"space": "fsLR", "density": "91k"},
          ".pscalar.nii": {"space": "fsLR", "density": "91k"}}
_ATLAS = {"atlas": "Schaefer2018", "seg": "7n", "scale": 200}
_NO_SPACE = {"space": None, "resolution": None, "density": None}


def _written_names(out):
    """(row, path, entities) of every file named from entities, in every format of its row."""
    names = []
    for row in OUTPUTS:
        for extension in row.extensions if row.suffix else ():
            carried = row.carries(extension)
            spaces = [_GRIDS[extension]] if extension in _GRIDS else _GRIDS.values()
            for space in spaces:  # a parcel table is named alike from every input space
                source = {**_RUN, **space, "desc": "preproc"}
                overrides = {"hemi": "L"} if extension == ".func.gii" else {}
                overrides.update(_ATLAS if "atlas" in carried else {})
                path = output_path(out, row.key, source, extension=extension, **overrides)
                expected = {k: str(v) for k, v in {**source, **overrides}.items()
                            if k in carried}
                names.append((row, path, {**expected, "desc": row.desc}))
    return names


def test_every_output_name_round_trips(tmp_path):
    names = _written_names(tmp_path)
    # the parcel tables drop the input's space; 18 of them are the stimulus-pairing rows (6
    # its two maps), 1 the participant level's stimulus decoding
    assert len({p for _, p, _ in names}) == 58
    for row, path, expected in names:
        parsed, suffix, extension = parse_derivative_name(path)
        assert parsed == expected, path.name
        assert (suffix, "." + path.name.partition(".")[2]) == (row.suffix, extension)
        folder = path.parent.relative_to(tmp_path).as_posix()
        assert folder == (GROUP_FOLDER if row.level == "group"
                          else "sub-01/ses-a/" + row.datatype), path


def test_entity_order_and_names_agree_with_the_bids_schema(tmp_path):
    schema = pytest.importorskip("bidsschematools.schema").load_schema()
    keys = [schema.objects.entities[name]["name"] for name in schema.rules.entities]
    ours = [key for _, key in ENTITY_ORDER]
    assert set(ours) <= set(keys)
    assert ours == sorted(ours, key=keys.index)  # the schema's order (hemi before space, ...)
    # the long names differ from the schema's where derivatives.ENTITY_ORDER says so
    long_names = {schema.objects.entities[name]["name"]: name for name in schema.rules.entities}
    assert {long: long_names[key] for long, key in ENTITY_ORDER if long_names[key] != long} == {
        "hemi": "hemisphere", "seg": "segmentation", "desc": "description"}
    for _, path, _ in _written_names(tmp_path):
        order = [part.split("-")[0] for part in path.name.split(".")[0].split("_")[:-1]]
        assert order == sorted(order, key=keys.index), path.name
    # suffixes: BIDS knows only bold; timeseries is kept out of .bidsignore (see outputs.py)
    suffixes = {s["value"] for s in schema.objects.suffixes.values()}
    ours_in_bids = {row.suffix for row in OUTPUTS if row.in_bids and row.suffix}
    assert ours_in_bids - suffixes == {"timeseries"}
    assert not {row.suffix for row in OUTPUTS if not row.in_bids and row.suffix} & suffixes


def test_pybids_parses_our_names_as_we_do_except_scale(tmp_path):
    from bids.layout import parse_file_entities

    renamed = {"segmentation": "seg", "res": "resolution", "den": "density"}
    for _, path, expected in _written_names(tmp_path):
        found = parse_file_entities(path.relative_to(tmp_path).as_posix())
        assert (found.pop("suffix"), found.pop("extension")) == parse_derivative_name(path)[1:]
        found.pop("datatype", None)
        found = {renamed.get(k, k): str(v) for k, v in found.items()}
        # pybids (0.22) knows no scale entity; it agrees on every other entity
        assert set(expected) - set(found) == ({"scale"} if "scale" in expected else set())
        assert found == {k: v for k, v in expected.items() if k in found}, path.name


def test_pybids_default_patterns_cannot_build_our_names(tmp_path):
    # why derivative_path orders the entities itself (see its comment)
    from bids.layout.models import Config
    from bids.layout.writing import build_path

    patterns = [p for name in ("derivatives", "bids")
                for p in Config.load(name).default_path_patterns]
    pybids_names = {"seg": "segmentation", "resolution": "res", "density": "den"}
    built = {}
    for row, path, entities in _written_names(tmp_path):
        entities = {pybids_names.get(k, k): v for k, v in entities.items()}
        built[path.relative_to(tmp_path).as_posix()] = build_path(
            {**entities, "suffix": row.suffix, "datatype": row.datatype,
             "extension": "." + path.name.partition(".")[2]}, patterns, strict=False)
    made = {ours: theirs for ours, theirs in built.items() if theirs is not None}
    assert made == {  # the only pattern that fits drops res
        "sub-01/ses-a/func/sub-01_ses-a_task-rest_acq-hi_run-2_space-MNI152NLin6Asym_res-2_"
        "desc-samba_bold.nii.gz": "sub-01/ses-a/func/sub-01_ses-a_task-rest_acq-hi_run-2_"
                                  "space-MNI152NLin6Asym_desc-samba_bold.nii.gz"}


def test_output_paths_are_the_names_written_today(tmp_path):
    """output_path gives the names of today's derivative_path calls (samba_bids/workflows)."""
    out = tmp_path
    for grid, space in _GRIDS.items():
        ents = {**_RUN, **space, "desc": "preproc"}
        hemi = {"hemi": "L"} if grid == ".func.gii" else {}
        atlas = _ATLAS if grid in (".ptseries.nii", ".pscalar.nii") else {}
        parcel = {"density": None} if atlas else {}  # parcel-level CIFTI: density=None
        in_grid = [("bold", "samba", "bold")] * (grid != ".pscalar.nii")
        if grid in (".func.gii", ".pscalar.nii", ".nii.gz"):
            in_grid += [("testr_map", "testr", "boldmap"), ("hrfttp_map", "hrfttp", "boldmap")]
        for key, desc, suffix in in_grid:
            assert output_path(out, key, ents, extension=grid, **hemi, **atlas) == (
                derivative_path(out, ents, suffix=suffix, extension=grid, **parcel, desc=desc,
                                **hemi, **atlas))
        for key, desc, suffix in (("timeseries", "samba", "timeseries"),
                                  ("observed_timeseries", "observed", "timeseries"),
                                  ("reverse_timeseries", "sambareverse", "timeseries"),
                                  ("observed_power", "observedpower", "timeseries"),
                                  ("hrf", "samba", "hrf"), ("metrics", "samba", "metrics"),
                                  ("reverse_metrics", "sambareverse", "metrics")):
            assert output_path(out, key, ents, **_ATLAS) == derivative_path(
                out, ents, suffix=suffix, extension=".tsv", **_NO_SPACE, desc=desc, **_ATLAS)
        for key, desc, suffix, ext in (("model", "samba", "model", ".pt"),
                                       ("history", "samba", "history", ".tsv"),
                                       ("reverse_model", "sambareverse", "model", ".pt"),
                                       ("reverse_history", "sambareverse", "history", ".tsv")):
            assert output_path(out, key, ents) == derivative_path(
                out, ents, suffix=suffix, extension=ext, datatype="model", **_NO_SPACE,
                desc=desc)
        # group level: tables per task and atlas; maps named from a participant map's entities
        for key, desc in (("group_model_metrics", "groupmodel"),
                          ("group_participants", "participants"), ("group_parcels", "parcels")):
            assert output_path(out, key, {**ents, **_ATLAS}) == group_derivative_path(
                out, {"task": "rest", **_ATLAS}, suffix="metrics", extension=".tsv", desc=desc)
        if grid in (".func.gii", ".pscalar.nii", ".nii.gz"):
            participant_map = output_path(out, "testr_map", ents, extension=grid, **hemi, **atlas)
            found, _, extension = parse_derivative_name(participant_map)
            kept = {k: v for k, v in found.items()
                    if k not in ("subject", "session", "run", "desc")}
            for key, desc in (("group_testr_mean", "testrmean"), ("group_testr_sd", "testrsd"),
                              ("group_hrfttp_mean", "hrfttpmean"),
                              ("group_hrfttp_sd", "hrfttpsd")):
                assert output_path(out, key, found, extension=extension) == (
                    group_derivative_path(out, kept, suffix="boldmap", extension=extension,
                                          desc=desc))
    # files not named from entities
    assert output_path(out, "report", _RUN) == out / "sub-01.html"
    assert output_path(out, "group_report", _RUN) == out / "group.html"
    assert output_path(out, "group_task_report", {**_RUN, **_ATLAS}) == (
        out / "group_task-rest_scale-200.html")
    assert output_path(out, "config", _RUN) == out / "logs" / "config.json"
    assert output_path(out, "citation", {}, extension=".bib") == out / "logs" / "CITATION.bib"
    assert output_path(out, "bidsignore", {}) == out / ".bidsignore"
    with pytest.raises(ValueError, match="do not carry"):
        output_path(out, "hrf", _RUN, hemi="L")
    with pytest.raises(ValueError, match="pass extension"):
        output_path(out, "bold", _RUN)
    with pytest.raises(ValueError, match="not '.tsv'"):
        output_path(out, "bold", _RUN, extension=".tsv")
    with pytest.raises(KeyError, match="No output 'colour'"):
        output_path(out, "colour", _RUN)


def test_bidsignore_comes_from_the_table(tmp_path):
    before = ("*_hrf.tsv", "*_hrf.json", "*_metrics.tsv", "*_metrics.json", "*_model.pt",
              "*_model.json", "*_history.tsv", "*_history.json", "*_boldmap.*",
              "*_boldmap.json", "*.html", "logs/", "group/")  # the hand-kept list it replaced
    assert NONSTANDARD == bidsignore_patterns() == before
    write_dataset_description(tmp_path, {"raw": tmp_path / "raw"})
    assert (tmp_path / ".bidsignore").read_text() == "\n".join(before) + "\n"


def test_write_output_writes_file_and_sidecar(tmp_path):
    import nibabel as nib
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"parcel": ["7Networks_LH_Vis_1", "7Networks_RH_Vis_1"],
                          "pearson_r": [0.25, np.nan], "significant": [True, False]})
    sources = ["bids:raw:sub-01/eeg/sub-01_task-rest_eeg.vhdr"]
    parameters = {"Description": "Per-parcel scores.", "RidgePenalty": np.float64(10.0),
                  "Summary": {"median_pearson_r": 0.25}}
    with record_writes() as written:
        path = write_output(tmp_path, "metrics", _RUN, frame, sources=sources,
                            parameters=parameters, **_ATLAS)
    assert path.name == ("sub-01_ses-a_task-rest_acq-hi_run-2_atlas-Schaefer2018_seg-7n_"
                         "scale-200_desc-samba_metrics.tsv")
    assert written == [path, sidecar_path(path)]
    reloaded = pd.read_csv(path, sep="\t", na_values="n/a")
    pd.testing.assert_frame_equal(reloaded, frame)
    assert json.loads(sidecar_path(path).read_text()) == {
        "Sources": sources, "Description": "Per-parcel scores.", "RidgePenalty": 10.0,
        "Summary": {"median_pearson_r": 0.25}}
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    img = nib.Nifti1Image(data, np.eye(4))
    path = write_output(tmp_path, "testr_map", {**_RUN, **_GRIDS[".nii.gz"]}, img,
                        extension=".nii.gz", sources=sources)
    assert path.name.endswith("_space-MNI152NLin6Asym_res-2_desc-testr_boldmap.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj), data)
    assert json.loads(sidecar_path(path).read_text()) == {"Sources": sources}
    with pytest.raises(ValueError, match="no JSON sidecar"):
        write_output(tmp_path, "report", _RUN, "<html/>", sources=sources)
    with pytest.raises(ValueError, match="No default writer"):
        write_output(tmp_path, "model", _RUN, object(), sources=sources)


def test_write_output_failure_leaves_neither_file(tmp_path, monkeypatch):
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0]})
    folder = tmp_path / "sub-01" / "ses-a" / "func"

    def broken(path, obj):
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError, match="killed"):
        write_output(tmp_path, "hrf", _RUN, frame, sources=[], writer=broken, **_ATLAS)
    assert list(folder.iterdir()) == []
    with pytest.raises(TypeError, match="not JSON serialisable"):  # before any file
        write_output(tmp_path, "hrf", _RUN, frame, sources=[], parameters={"x": object()},
                     **_ATLAS)
    assert list(folder.iterdir()) == []
    real_replace = os.replace

    def full_disk_for_json(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk_for_json)
    with record_writes() as written, pytest.raises(CantCreateError, match="disk is full"):
        write_output(tmp_path, "hrf", _RUN, frame, sources=[], **_ATLAS)
    assert list(folder.iterdir()) == [] and written == []


def test_runs_without_bold_are_kept_beside_the_pairs(tmp_path, templates_dir):
    """A recording with no BOLD run is an EEG/MEG-only run of its participant, not an error;
    a participant with no BOLD at all needs --models."""
    import mne_bids

    from samba_bids.bids.layout import collect_participants

    from .synthetic import make_eeg_raw

    root = make_dataset(tmp_path / "ds", templates_dir, subjects=("01", "02"), n_volumes=30)
    for subject, task in (("01", "outside"), ("02", "outside")):
        raw = make_eeg_raw(60.0, n_volumes=30, tr_s=2.0, seed=5)
        mne_bids.write_raw_bids(raw, mne_bids.BIDSPath(subject=subject, task=task, root=root,
                                                       datatype="eeg"),
                                format="BrainVision", allow_preload=True, verbose=False)
    participants = collect_participants(_layout(root, tmp_path))
    assert [p.subject for p in participants] == ["01", "02"]
    for participant in participants:
        assert [pair.entities["task"] for pair in participant.pairs] == ["rest"]
        (only,) = participant.ephys_only
        assert only.entities["task"] == "outside" and only.ephys_file.name.endswith(".vhdr")
        assert only.label == f"sub-{participant.subject}_task-outside"
    # collect_pairs gives the pairs only
    assert [p.label for p in collect_pairs(_layout(root, tmp_path))] == [
        "sub-01_task-rest", "sub-02_task-rest"]
    # a participant with EEG but no BOLD at all: the fix is named, unless --models
    shutil.rmtree(root / "derivatives" / "preproc" / "sub-02")
    with pytest.raises(NoInputError, match="--models"):
        collect_participants(_layout(root, tmp_path))
    participants = collect_participants(_layout(root, tmp_path), allow_ephys_only=True)
    assert participants[1].pairs == [] and len(participants[1].ephys_only) == 2


def test_bold_runs_without_a_recording_are_kept_as_bold_only_runs(tmp_path, templates_dir,
                                                                   caplog):
    """A BOLD run with no recording of the same run is a BoldRun (the reverse direction
    translates it); one whose files do not make a run (a hemisphere missing) is named in a
    warning and left out."""
    from samba_bids.bids.layout import collect_participants

    root = make_dataset(tmp_path / "ds", templates_dir, subjects=("01",), n_volumes=30)
    func = root / "derivatives" / "preproc" / "sub-01" / "func"
    for path in sorted(func.glob("sub-01_task-rest_*bold.*")):  # GIFTI pair + sidecar
        shutil.copy(path, path.with_name(path.name.replace("task-rest", "task-movie")))
        if "hemi-L" in path.name:
            shutil.copy(path, path.with_name(path.name.replace("task-rest", "task-faces")))
    with caplog.at_level("WARNING", logger="samba_bids.bids.layout"):
        (participant,) = collect_participants(_layout(root, tmp_path),
                                              bold_space="fsaverage5")
    assert [p.label for p in participant.pairs] == ["sub-01_task-rest"]
    (run,) = participant.bold_only
    assert run.label == "sub-01_task-movie" and run.ephys_file is None
    assert [f.name for f in run.bold_files] == [
        f"sub-01_task-movie_hemi-{h}_space-fsaverage5_bold.func.gii" for h in "LR"]
    assert run.tr_s == participant.pairs[0].tr_s and run.space == "fsaverage5"
    (message,) = [m for m in caplog.messages if "no EEG/MEG recording" in m]
    assert "sub-01_task-faces" in message and "hemi-R" in message
