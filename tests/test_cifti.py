"""CIFTI (fsLR 91k grayordinates) on the BOLD side: atlas, loading, parcellation, outputs.

Runs on the real Schaefer-200 fsLR dlabel of ``../shared/data/templates/fsLR`` with planted
parcel values, so every expected parcel value, grayordinate value and axis is known exactly.
"""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2.cifti2_axes import (
    BrainModelAxis,
    LabelAxis,
    ParcelsAxis,
    ScalarAxis,
    SeriesAxis,
)
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData

from samba_bids.bids.derivatives import derivative_path
from samba_bids.bids.layout import collect_pairs, default_derivatives, index_dataset
from samba_bids.bold import (
    SUPPORTED_SPACES,
    bold_repetition_time,
    load_bold_atlas,
    load_cifti_bold,
    parcel_map_images,
    parcel_series_cifti,
    parcellate_bold,
    project_parcels,
    save_image,
)
from samba_bids.errors import DataError, NoInputError
from samba_bids.templates import (
    CIFTI_SPACES,
    FSLR_MIDTHICKNESS,
    cifti_atlas,
    cifti_parcel_centroids,
    read_cifti_labels,
)

from .synthetic import make_dataset

N_PARCELS = 200
N_GRAYORDINATES = 91282
TR_S = 1.5
STEM = "sub-01_task-rest"
FOUR_S = "tpl-fsLR_atlas-4S_scale-156_den-91k_dseg.dlabel.nii"


@pytest.fixture(scope="module")
def fslr_dir(templates_dir):
    folder = templates_dir / "fsLR"
    if not folder.is_dir():
        pytest.skip("../shared/data/templates/fsLR is absent")
    return folder


@pytest.fixture(scope="module")
def atlas(templates_dir, fslr_dir):
    return load_bold_atlas(templates_dir, "fsLR", N_PARCELS)


@pytest.fixture(scope="module")
def fsaverage5_atlas(templates_dir, fslr_dir):
    return load_bold_atlas(templates_dir, "fsaverage5", N_PARCELS)


@pytest.fixture(scope="module")
def planted():
    """(200 parcels, 7 volumes) distinct parcel values, parcel 5 NaN throughout."""
    rng = np.random.default_rng(3)
    values = rng.standard_normal((N_PARCELS, 7)).astype(np.float32) + 10 * np.arange(N_PARCELS)[
        :, None
    ].astype(np.float32)
    values[4] = np.nan
    return values


def dtseries(data, brain_models, tr_s=TR_S, unit="SECOND"):
    """A dense time series image of (n_grayordinates, n_volumes) data."""
    axes = (SeriesAxis(0.0, tr_s, data.shape[1], unit=unit), brain_models)
    img = nib.Cifti2Image(np.asarray(data, dtype=np.float32).T, header=axes)
    img.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES")
    return img


# --- atlas ---------------------------------------------------------------------------------


def test_fslr_is_a_supported_space():
    assert CIFTI_SPACES == ("fsLR",)
    assert "fsLR" in SUPPORTED_SPACES


def test_real_dlabel_atlas(atlas, fsaverage5_atlas, fslr_dir, templates_dir):
    path, names = cifti_atlas(templates_dir, N_PARCELS)
    assert path.parent == fslr_dir and path.name.endswith("200Parcels7Networks_dseg.dlabel.nii")
    assert atlas.kind == "cifti" and atlas.space == "fsLR"
    assert atlas.n_parcels == N_PARCELS and atlas.n_grayordinates == N_GRAYORDINATES
    assert isinstance(atlas.brain_models, BrainModelAxis)
    assert len(atlas.brain_models) == N_GRAYORDINATES
    assert atlas.brain_models.nvertices == {
        "CIFTI_STRUCTURE_CORTEX_LEFT": 32492, "CIFTI_STRUCTURE_CORTEX_RIGHT": 32492
    }
    # Same Schaefer names and order as fsaverage5 and as the table beside the dlabel
    assert names == atlas.names == fsaverage5_atlas.names
    table = fslr_dir / "tpl-fsLR_atlas-Schaefer2018_desc-200Parcels7Networks_dseg.tsv"
    assert atlas.names == [line.split("\t")[1] for line in table.read_text().splitlines()[1:]]
    labels = atlas.grayordinate_labels
    assert labels.shape == (N_GRAYORDINATES,) and set(np.unique(labels)) == set(range(201))
    # cortex only: left parcels 1..100 on CORTEX_LEFT, right 101..200 on CORTEX_RIGHT
    left = atlas.brain_models.name == "CIFTI_STRUCTURE_CORTEX_LEFT"
    right = atlas.brain_models.name == "CIFTI_STRUCTURE_CORTEX_RIGHT"
    assert left.sum() == 29696 and right.sum() == 29716
    assert set(np.unique(labels[left])) == set(range(101))
    assert set(np.unique(labels[right])) == {0} | set(range(101, 201))
    assert not labels[~(left | right)].any()


def test_centroids_fall_back_to_same_named_fsaverage5_parcels(atlas, fsaverage5_atlas):
    # no fsLR mesh is available offline: the documented fallback is fsaverage5 by name
    np.testing.assert_allclose(atlas.centroids_mm, fsaverage5_atlas.centroids_mm, atol=1e-9)
    assert any(p.name.startswith("lh.Schaefer2018_200") for p in atlas.files)
    lh = np.array(["_LH_" in n for n in atlas.names])
    assert (atlas.centroids_mm[lh, 0] < 0).all() and (atlas.centroids_mm[~lh, 0] > 0).all()


def test_centroids_from_fslr_meshes_when_present(tmp_path, atlas, fslr_dir):
    folder = tmp_path / "fsLR"
    folder.mkdir()
    rng = np.random.default_rng(0)
    meshes = {}
    for hemi in ("L", "R"):
        coords = rng.uniform(-70, 70, (32492, 3)).astype(np.float32)
        faces = np.array([[0, 1, 2]], dtype=np.int32)
        img = GiftiImage(darrays=[
            GiftiDataArray(coords, intent="NIFTI_INTENT_POINTSET", datatype="NIFTI_TYPE_FLOAT32"),
            GiftiDataArray(faces, intent="NIFTI_INTENT_TRIANGLE", datatype="NIFTI_TYPE_INT32"),
        ])
        nib.save(img, str(folder / FSLR_MIDTHICKNESS.format(hemi=hemi)))
        meshes[hemi] = coords
    centroids, files = cifti_parcel_centroids(tmp_path, atlas.grayordinate_labels,
                                              atlas.brain_models, atlas.names)
    assert sorted(p.name for p in files) == sorted(
        FSLR_MIDTHICKNESS.format(hemi=h) for h in ("L", "R"))
    bm = atlas.brain_models
    for k in (1, 57, 150, 200):
        rows = np.flatnonzero(atlas.grayordinate_labels == k)
        hemi = "L" if bm.name[rows[0]] == "CIFTI_STRUCTURE_CORTEX_LEFT" else "R"
        expected = meshes[hemi][bm.vertex[rows]].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(centroids[k - 1], expected, rtol=1e-6)


def test_missing_dlabel_names_the_file(tmp_path):
    (tmp_path / "fsLR").mkdir()
    with pytest.raises(NoInputError, match=r"fsLR/tpl-fsLR_den-91k_atlas-Schaefer2018_desc-"
                                           r"400Parcels7Networks_dseg\.dlabel\.nii is missing.*"
                                           r"--templates-dir"):
        load_bold_atlas(tmp_path, "fsLR", 400)


def test_truncated_dlabel_is_a_data_error(fslr_dir):
    path = fslr_dir / FOUR_S
    header_only = nib.load(str(path))  # the header is valid: nibabel reads it
    assert isinstance(header_only.header.get_axis(0), LabelAxis)
    with pytest.raises(DataError, match=rf"{FOUR_S} is truncated or corrupt.*re-fetch"):
        read_cifti_labels(path)
    # as a BOLD run it is refused for what it is before any data is read
    with pytest.raises(DataError, match=rf"{FOUR_S} is a LabelAxis x BrainModelAxis.*dtseries"):
        load_cifti_bold(path)


# --- loading and parcellation --------------------------------------------------------------


def test_parcellate_planted_values(atlas, planted):
    rng = np.random.default_rng(1)
    labels = atlas.grayordinate_labels
    table = np.vstack([np.zeros((1, planted.shape[1])), planted.astype(np.float64)])
    data = table[labels]
    data[labels == 0] = rng.standard_normal(((labels == 0).sum(), planted.shape[1])) * 1e3
    # a few NaN grayordinates inside parcel 1 are ignored
    in_first = np.flatnonzero(labels == 1)[:5]
    data[in_first] = np.nan
    means = parcellate_bold(data, atlas)
    assert means.shape == planted.shape
    np.testing.assert_allclose(means, planted, rtol=1e-6)
    # the same through a Cifti2Image
    means_img = parcellate_bold(dtseries(data, atlas.brain_models), atlas)
    np.testing.assert_allclose(means_img, planted, rtol=1e-6)
    with pytest.raises(DataError, match=r"59412 grayordinates but the fsLR atlas has 91282"):
        parcellate_bold(data[:59412], atlas)


def test_load_cifti_bold_checks(tmp_path, atlas):
    data = np.random.default_rng(2).standard_normal((N_GRAYORDINATES, 4))
    path = tmp_path / f"{STEM}_space-fsLR_den-91k_bold.dtseries.nii"
    nib.save(dtseries(data, atlas.brain_models, tr_s=0.72), str(path))
    loaded, brain_models, tr_s = load_cifti_bold(path, atlas=atlas)
    assert loaded.shape == (N_GRAYORDINATES, 4) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, data, rtol=1e-6)
    assert brain_models == atlas.brain_models and tr_s == pytest.approx(0.72)
    assert bold_repetition_time(path) == pytest.approx(0.72)
    assert bold_repetition_time([path], tr_s=2.0) == 2.0  # the sidecar's value wins
    np.testing.assert_allclose(parcellate_bold(path, atlas),
                               parcellate_bold(data, atlas), atol=1e-6)  # float32 file

    cortex = tmp_path / "cortex_only_bold.dtseries.nii"
    nib.save(dtseries(data[:59412], atlas.brain_models[:59412]), str(cortex))
    with pytest.raises(DataError, match=r"cortex_only_bold.dtseries.nii has 59412 grayordinates "
                                        r"but the fsLR atlas has 91282"):
        load_cifti_bold(cortex, atlas=atlas)

    hertz = tmp_path / "hertz_bold.dtseries.nii"
    nib.save(dtseries(data, atlas.brain_models, unit="HERTZ"), str(hertz))
    with pytest.raises(DataError, match=r"hertz_bold.dtseries.nii: its series axis is in HERTZ"):
        bold_repetition_time(hertz)

    truncated = tmp_path / "truncated_bold.dtseries.nii"
    raw = path.read_bytes()
    truncated.write_bytes(raw[: len(raw) - data.size * 2])  # header + half the data
    with pytest.raises(DataError, match=r"truncated_bold.dtseries.nii is truncated or corrupt"):
        load_cifti_bold(truncated)

    with pytest.raises(NoInputError, match="missing_bold.dtseries.nii does not exist"):
        load_cifti_bold(tmp_path / "missing_bold.dtseries.nii")


# --- outputs -------------------------------------------------------------------------------


def test_project_parcels_dtseries_round_trip(tmp_path, atlas, planted):
    reference = tmp_path / f"{STEM}_space-fsLR_den-91k_bold.dtseries.nii"
    nib.save(dtseries(np.ones((N_GRAYORDINATES, 3)), atlas.brain_models, tr_s=9.0),
             str(reference))
    (img,) = project_parcels(planted, atlas, reference, tr_s=TR_S)
    path = save_image(img, tmp_path / f"{STEM}_space-fsLR_den-91k_desc-samba_bold.dtseries.nii")
    back = nib.load(str(path))
    assert int(back.nifti_header["intent_code"]) == 3002
    series, brain_models = back.header.get_axis(0), back.header.get_axis(1)
    assert isinstance(series, SeriesAxis) and isinstance(brain_models, BrainModelAxis)
    assert series.size == planted.shape[1] and series.unit == "SECOND"
    assert series.step == pytest.approx(TR_S) and series.start == 0
    assert brain_models == atlas.brain_models
    data = back.get_fdata()
    assert data.shape == (planted.shape[1], N_GRAYORDINATES)
    labels = atlas.grayordinate_labels
    for k in (1, 2, 5, 100, 101, 200):
        cols = data[:, labels == k]
        expected = np.broadcast_to(planted[k - 1][:, None], cols.shape)
        np.testing.assert_array_equal(cols, expected)  # NaN parcel 5 painted NaN
    assert not data[:, labels == 0].any()
    # reading it back gives the planted parcel values (NaN parcel 5 stays NaN)
    loaded, _, tr_s = load_cifti_bold(path, atlas=atlas)
    assert tr_s == pytest.approx(TR_S) and bold_repetition_time(path) == pytest.approx(TR_S)
    np.testing.assert_allclose(parcellate_bold(loaded, atlas), planted, rtol=1e-6)
    # tr_s None keeps the reference's step; 1-D maps belong to parcel_map_images
    (kept,) = project_parcels(planted, atlas, reference)
    assert kept.header.get_axis(0).step == pytest.approx(9.0)
    with pytest.raises(ValueError, match="parcel_map_images"):
        project_parcels(planted[:, 0], atlas, None, tr_s=TR_S)


def test_project_parcels_refuses_other_grayordinates(tmp_path, atlas, planted):
    cortex = dtseries(np.ones((59412, 2)), atlas.brain_models[:59412])
    with pytest.raises(DataError, match="59412 grayordinates but the fsLR atlas has 91282"):
        project_parcels(planted, atlas, cortex, tr_s=TR_S)
    with pytest.raises(ValueError, match="repetition time"):
        project_parcels(planted, atlas, None)


def test_ptseries_round_trip(tmp_path, atlas, planted):
    img = parcel_series_cifti(planted, atlas, TR_S)
    path = save_image(img, tmp_path / f"{STEM}_space-fsLR_den-91k_desc-samba_bold.ptseries.nii")
    back = nib.load(str(path))
    assert int(back.nifti_header["intent_code"]) == 3004
    series, parcels = back.header.get_axis(0), back.header.get_axis(1)
    assert isinstance(series, SeriesAxis) and isinstance(parcels, ParcelsAxis)
    assert series.step == pytest.approx(TR_S) and series.size == planted.shape[1]
    assert list(parcels.name) == atlas.names and len(parcels) == N_PARCELS
    data = back.get_fdata()
    assert data.shape == (planted.shape[1], N_PARCELS)
    np.testing.assert_array_equal(data, planted.T)
    # each parcel holds exactly the vertices that the dlabel gives it
    bm, labels = atlas.brain_models, atlas.grayordinate_labels
    for k in (1, 150):
        rows = labels == k
        structure = bm.name[rows][0]
        np.testing.assert_array_equal(parcels.vertices[k - 1][structure], bm.vertex[rows])
        assert len(parcels.voxels[k - 1]) == 0


def test_pscalar_maps_round_trip(tmp_path, atlas):
    ttp = np.linspace(4.0, 7.0, N_PARCELS)
    r = np.linspace(-0.2, 0.8, N_PARCELS)
    r[10] = np.nan
    (img,) = parcel_map_images({"hrf_time_to_peak_s": ttp, "test_pearson_r": r}, atlas)
    path = save_image(img, tmp_path / f"{STEM}_space-fsLR_den-91k_desc-samba_boldmap.pscalar.nii")
    back = nib.load(str(path))
    assert int(back.nifti_header["intent_code"]) == 3008
    scalars, parcels = back.header.get_axis(0), back.header.get_axis(1)
    assert isinstance(scalars, ScalarAxis) and isinstance(parcels, ParcelsAxis)
    assert list(scalars.name) == ["hrf_time_to_peak_s", "test_pearson_r"]
    assert list(parcels.name) == atlas.names
    data = back.get_fdata()
    assert data.shape == (2, N_PARCELS)
    np.testing.assert_allclose(data[0], ttp, rtol=1e-6)
    np.testing.assert_allclose(data[1], r, rtol=1e-6)  # NaN stays NaN at parcel 11
    assert np.isnan(data[1, 10])
    with pytest.raises(ValueError, match=r"map 'x' has shape \(3,\)"):
        parcel_map_images({"x": np.zeros(3)}, atlas)


def test_surface_maps(tmp_path, fsaverage5_atlas):
    atlas = fsaverage5_atlas
    reference = []
    for hemi, key, structure in (("L", "lh", "CortexLeft"), ("R", "rh", "CortexRight")):
        n = atlas.surface_labels[key].size
        img = GiftiImage(meta=GiftiMetaData({"AnatomicalStructurePrimary": structure,
                                             "TimeStep": "1400"}),
                         darrays=[GiftiDataArray(np.zeros(n, np.float32),
                                                 intent="NIFTI_INTENT_TIME_SERIES",
                                                 datatype="NIFTI_TYPE_FLOAT32")])
        path = tmp_path / f"{STEM}_hemi-{hemi}_space-fsaverage5_bold.func.gii"
        nib.save(img, str(path))
        reference.append(path)
    ttp = np.arange(1, N_PARCELS + 1, dtype=float)
    r = -ttp / 1000
    r[150] = np.nan
    images = parcel_map_images({"hrf_time_to_peak_s": ttp, "test_pearson_r": r}, atlas,
                               reference)
    assert len(images) == 2
    for img, key, hemi in zip(images, ("lh", "rh"), ("L", "R")):
        path = save_image(img, tmp_path / f"maps_hemi-{hemi}.func.gii")
        back = nib.load(str(path))
        assert "TimeStep" not in back.meta
        assert [d.meta["Name"] for d in back.darrays] == ["hrf_time_to_peak_s", "test_pearson_r"]
        assert all(d.intent == nib.nifti1.intent_codes["NIFTI_INTENT_NONE"]
                   for d in back.darrays)
        labels = atlas.surface_labels[key]
        inside = labels > 0
        np.testing.assert_array_equal(back.darrays[0].data[inside], ttp[labels[inside] - 1])
        np.testing.assert_array_equal(back.darrays[1].data[inside],
                                      r[labels[inside] - 1].astype(np.float32))
        assert not back.darrays[0].data[~inside].any()
    assert np.isnan(images[1].darrays[1].data[atlas.surface_labels["rh"] == 151]).all()


def test_volume_maps(templates_dir, fslr_dir):
    atlas = load_bold_atlas(templates_dir, "MNI152NLin6Asym", N_PARCELS)
    grid = atlas.volume_labels
    reference = nib.Nifti1Image(np.zeros(grid.shape + (2,), np.float32), grid.affine)
    ttp = np.arange(1, N_PARCELS + 1, dtype=float)
    r = np.full(N_PARCELS, 0.5)
    r[0] = np.nan
    images = parcel_map_images({"hrf_time_to_peak_s": ttp, "test_pearson_r": r}, atlas,
                               reference)
    assert len(images) == 2 and all(img.shape == grid.shape for img in images)
    labels = np.asarray(grid.dataobj)
    np.testing.assert_array_equal(images[0].get_fdata()[labels > 0], ttp[labels[labels > 0] - 1])
    assert not images[0].get_fdata()[labels == 0].any()
    assert np.isnan(images[1].get_fdata()[labels == 1]).all()
    assert (images[1].get_fdata()[labels > 1] == 0.5).all()


# --- BIDS pairing --------------------------------------------------------------------------


def test_pairs_eeg_with_fslr_dtseries(tmp_path, templates_dir, atlas, planted):
    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=7, tr_s=TR_S,
                        spaces=("fsaverage5",))
    func = root / "derivatives" / "preproc" / "sub-01" / "func"
    (img,) = project_parcels(planted, atlas, None, tr_s=TR_S)
    dense = func / f"{STEM}_space-fsLR_den-91k_bold.dtseries.nii"
    nib.save(img, str(dense))
    (func / f"{STEM}_space-fsLR_den-91k_bold.json").write_text(
        json.dumps({"RepetitionTime": TR_S, "TaskName": "rest"}))
    # another fsLR dtseries with a desc is not fMRIPrep's preprocessed run: not chosen
    shutil.copy(dense, func / f"{STEM}_space-fsLR_den-91k_desc-smoothed_bold.dtseries.nii")
    layout = index_dataset(root, default_derivatives(root), tmp_path / "work")
    (pair,) = collect_pairs(layout, bold_space="fsLR")
    assert pair.ephys_file.name == f"{STEM}_eeg.vhdr"
    assert pair.space == "fsLR" and pair.bold_files == [dense]
    assert pair.tr_s == TR_S and pair.confounds_file is not None
    assert pair.bold_entities == {"subject": "01", "task": "rest", "space": "fsLR",
                                  "density": "91k"}
    out = derivative_path(tmp_path / "out", pair.bold_entities, suffix="bold",
                          extension=".dtseries.nii", desc="samba")
    assert out.name == f"{STEM}_space-fsLR_den-91k_desc-samba_bold.dtseries.nii"
    (other,) = collect_pairs(layout, bold_space="fsaverage5")
    assert [f.name for f in other.bold_files] == [
        f"{STEM}_hemi-L_space-fsaverage5_bold.func.gii",
        f"{STEM}_hemi-R_space-fsaverage5_bold.func.gii",
    ]
    # the paired file goes through the BOLD stage
    data, _, tr_s = load_cifti_bold(pair.bold_files[0], atlas=atlas)
    assert tr_s == pytest.approx(TR_S)
    np.testing.assert_allclose(parcellate_bold(data, atlas), planted, rtol=1e-6)


# --- simulated CIFTI input -----------------------------------------------------------------


def test_simulated_dataset_writes_fslr_dtseries(tmp_path, templates_dir, atlas):
    import pandas as pd

    from samba_bids.simulate import BOLD_BASELINE, simulate_dataset

    duration_s, tr_s = 40.0, 2.0
    root = simulate_dataset(tmp_path / "sim", templates_dir, duration_s=duration_s, tr_s=tr_s,
                            n_channels=16, ephys_scale=100, bold_scale=N_PARCELS,
                            spaces=("fsLR",), seed=1)
    func = root / "derivatives" / "preproc" / "sub-01" / "func"
    assert sorted(p.name for p in func.glob("*_bold.*")) == [
        f"{STEM}_space-fsLR_den-91k_bold.dtseries.nii", f"{STEM}_space-fsLR_den-91k_bold.json"]
    layout = index_dataset(root, default_derivatives(root), tmp_path / "work")
    (pair,) = collect_pairs(layout)  # the only space present
    assert pair.space == "fsLR" and pair.tr_s == tr_s
    data, _, file_tr_s = load_cifti_bold(pair.bold_files[0], atlas=atlas)
    assert file_tr_s == pytest.approx(tr_s) and data.shape == (N_GRAYORDINATES, 20)
    # every parcel's grayordinates carry the simulated parcel BOLD (same Schaefer name)
    truth = root / "derivatives" / "truth" / "sub-01" / "func"
    noisy = pd.read_csv(truth / f"{STEM}_desc-noisy_timeseries.tsv", sep="\t")
    assert list(noisy.columns) == atlas.names
    observed = parcellate_bold(data, atlas) - BOLD_BASELINE
    r = [np.corrcoef(observed[m], noisy.to_numpy()[:, m])[0, 1] for m in range(N_PARCELS)]
    assert np.min(r) > 0.99
    params = json.loads((truth / f"{STEM}_desc-truth_parameters.json").read_text())
    assert params["Spaces"] == ["fsLR"]
