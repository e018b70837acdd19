"""Tests of the BOLD stage: loading, confounds, parcellation, cleaning, projection.

Synthetic runs are built on the real fsaverage5 and MNI152NLin6Asym Schaefer-200 atlases with
planted parcel signals, so the expected parcel time series are known exactly.
"""

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData

from samba_bids.bold import (
    FMRIPREP_AUTO_CONFOUNDS,
    ParcelAtlas,
    bold_repetition_time,
    clean_parcel_bold,
    load_bold_atlas,
    load_surface_bold,
    load_volume_bold,
    parcellate_bold,
    project_parcels,
    save_image,
    select_confounds,
)
from samba_bids.errors import DataError, UsageError

N_PARCELS = 200
STEM = "sub-01_task-rest"


@pytest.fixture(scope="module")
def surface_atlas(templates_dir) -> ParcelAtlas:
    return load_bold_atlas(templates_dir, "fsaverage5", N_PARCELS)


@pytest.fixture(scope="module")
def volume_atlas(templates_dir) -> ParcelAtlas:
    return load_bold_atlas(templates_dir, "MNI152NLin6Asym", N_PARCELS)


@pytest.fixture(scope="module")
def real_func(real_rest):
    return real_rest / "derivatives" / "preproc" / "sub-01" / "func"


@pytest.fixture(scope="module")
def real_gifti_pair(real_func):
    return [
        real_func / f"{STEM}_hemi-L_space-fsaverage5_bold.func.gii",
        real_func / f"{STEM}_hemi-R_space-fsaverage5_bold.func.gii",
    ]


def write_gifti(path, data, hemi, time_step_ms=1400.0):
    """Write (n_vertices, n_volumes) data as an fMRIPrep-style func.gii, one array per volume."""
    meta = {"AnatomicalStructurePrimary": {"L": "CortexLeft", "R": "CortexRight"}[hemi]}
    if time_step_ms is not None:
        meta["TimeStep"] = str(time_step_ms)
    darrays = [
        GiftiDataArray(
            np.ascontiguousarray(data[:, i], dtype=np.float32),
            intent="NIFTI_INTENT_TIME_SERIES",
            datatype="NIFTI_TYPE_FLOAT32",
        )
        for i in range(data.shape[1])
    ]
    nib.save(GiftiImage(meta=GiftiMetaData(meta), darrays=darrays), str(path))
    return path


def write_gifti_pair(folder, data_l, data_r, space="fsaverage5", **kwargs):
    left = write_gifti(folder / f"{STEM}_hemi-L_space-{space}_bold.func.gii", data_l, "L", **kwargs)
    right = write_gifti(
        folder / f"{STEM}_hemi-R_space-{space}_bold.func.gii", data_r, "R", **kwargs
    )
    return left, right


def planted_surface(atlas, n_volumes, rng):
    """Vertex data equal to their parcel's signal; medial-wall vertices random."""
    signals = rng.standard_normal((atlas.n_parcels, n_volumes)).astype(np.float32)
    table = np.vstack([np.zeros((1, n_volumes), np.float32), signals])
    hemis = []
    for key in ("lh", "rh"):
        labels = atlas.surface_labels[key]
        data = table[labels]
        wall = labels == 0
        data[wall] = 100 * rng.standard_normal((wall.sum(), n_volumes))
        hemis.append(data)
    return signals, hemis


def planted_volume(atlas, n_volumes, rng, noise=0.0):
    labels = np.asarray(atlas.volume_labels.dataobj)
    signals = rng.standard_normal((atlas.n_parcels, n_volumes)).astype(np.float32)
    table = np.vstack([np.zeros((1, n_volumes), np.float32), signals])
    data = table[labels]
    if noise:
        data += noise * rng.standard_normal(data.shape).astype(np.float32)
    img = nib.Nifti1Image(data, atlas.volume_labels.affine)
    img.header.set_zooms((2.0, 2.0, 2.0, 1.4))
    img.header.set_xyzt_units("mm", "sec")
    return signals, img


# --- atlases -----------------------------------------------------------------------------


def test_atlases_have_schaefer_parcels_and_matching_centroids(surface_atlas, volume_atlas):
    for atlas in (surface_atlas, volume_atlas):
        assert atlas.n_parcels == N_PARCELS
        assert atlas.names[0] == "7Networks_LH_Vis_1"
        assert atlas.centroids_mm.shape == (N_PARCELS, 3)
        # Schaefer order: left hemisphere first (x < 0 in RAS), then right.
        assert (atlas.centroids_mm[:100, 0] < 0).all()
        assert (atlas.centroids_mm[100:, 0] > 0).all()
    assert surface_atlas.kind == "surface" and volume_atlas.kind == "volume"
    assert surface_atlas.surface_labels["lh"].shape == (10242,)
    assert surface_atlas.n_vertices == 20484
    assert volume_atlas.volume_labels.shape == (91, 109, 91)
    assert surface_atlas.names == volume_atlas.names
    # Same parcels in two spaces: white-surface vs grey-matter-voxel centroids, a few mm apart.
    distance = np.linalg.norm(surface_atlas.centroids_mm - volume_atlas.centroids_mm, axis=1)
    assert np.median(distance) < 8.0


def test_unsupported_space_is_a_usage_error(templates_dir):
    with pytest.raises(UsageError, match="MNI152NLin6Asym") as err:
        load_bold_atlas(templates_dir, "T1w", N_PARCELS)
    assert "fsaverage5" in str(err.value) and "'T1w'" in str(err.value)


# --- 1. surface: planted signals ---------------------------------------------------------


def test_surface_planted_signals_recovered_exactly(tmp_path, surface_atlas):
    rng = np.random.default_rng(1)
    signals, (data_l, data_r) = planted_surface(surface_atlas, 12, rng)
    left, right = write_gifti_pair(tmp_path, data_l, data_r)

    data, n_lh = load_surface_bold([right, left])  # order comes from the hemi entity
    assert n_lh == 10242
    assert data.shape == (20484, 12) and data.dtype == np.float32
    np.testing.assert_array_equal(data[:n_lh], data_l)
    np.testing.assert_array_equal(data[n_lh:], data_r)

    parcels = parcellate_bold(data, surface_atlas)
    assert parcels.shape == (N_PARCELS, 12) and parcels.dtype == np.float64
    np.testing.assert_allclose(parcels, signals, rtol=1e-6, atol=1e-7)
    assert bold_repetition_time([left, right]) == pytest.approx(1.4)


def test_surface_nan_vertices_are_ignored(surface_atlas):
    rng = np.random.default_rng(2)
    signals, (data_l, data_r) = planted_surface(surface_atlas, 5, rng)
    data = np.concatenate([data_l, data_r])
    parcel_1 = np.flatnonzero(surface_atlas.surface_labels["lh"] == 1)
    data[parcel_1[:3]] = np.nan  # a few bad vertices: the others still give the mean
    parcels = parcellate_bold(data, surface_atlas)
    np.testing.assert_allclose(parcels, signals, rtol=1e-6, atol=1e-7)
    data[parcel_1] = np.nan  # a whole parcel without data: NaN row, not an error
    parcels = parcellate_bold(data, surface_atlas)
    assert np.isnan(parcels[0]).all() and np.isfinite(parcels[1:]).all()


# --- 2. volume: planted signals ----------------------------------------------------------


def test_volume_planted_signals_recovered_to_noise_level(volume_atlas):
    rng = np.random.default_rng(3)
    noise = 0.01
    signals, img = planted_volume(volume_atlas, 20, rng, noise=noise)
    parcels = parcellate_bold(img, volume_atlas)
    assert parcels.shape == (N_PARCELS, 20)
    counts = np.bincount(np.asarray(volume_atlas.volume_labels.dataobj).ravel())[1:]
    # Parcel mean of i.i.d. noise: sd = noise / sqrt(n_voxels); allow 5 sd.
    tolerance = 5 * noise / np.sqrt(counts)
    assert (np.abs(parcels - signals) < tolerance[:, None]).all()
    assert not np.allclose(parcels, signals, atol=1e-7)  # the noise is really there


def test_volume_on_another_grid_gives_all_parcels(tmp_path, volume_atlas):
    from nilearn.image import resample_img

    rng = np.random.default_rng(4)
    signals, img = planted_volume(volume_atlas, 20, rng)
    affine_3mm = np.array(
        [[-3.0, 0, 0, 90], [0, 3.0, 0, -126], [0, 0, 3.0, -72], [0, 0, 0, 1]], dtype=float
    )
    img_3mm = resample_img(
        img, target_affine=affine_3mm, target_shape=(61, 73, 61), interpolation="continuous"
    )
    img_3mm.header.set_zooms((3.0, 3.0, 3.0, 1.4))
    path = save_image(img_3mm, tmp_path / f"{STEM}_space-MNI152NLin6Asym_res-3_bold.nii")

    bold = load_volume_bold(path)
    assert bold.shape == (61, 73, 61, 20) and bold.get_data_dtype() == np.float32
    assert bold_repetition_time(path) == pytest.approx(1.4)
    parcels = parcellate_bold(bold, volume_atlas)
    assert parcels.shape == (N_PARCELS, 20)
    assert np.isfinite(parcels).all()
    # Boundary voxels mix neighbouring parcels; each parcel still follows its own signal.
    r = [np.corrcoef(parcels[k], signals[k])[0, 1] for k in range(N_PARCELS)]
    assert np.min(r) > 0.8 and np.median(r) > 0.95


def test_volume_mostly_outside_the_atlas_is_an_error(volume_atlas):
    # A BOLD whose field of view covers only a corner of the brain.
    data = np.ones((10, 10, 10, 4), np.float32)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(DataError, match="--bold-space"):
        parcellate_bold(img, volume_atlas, name="sub-01_bold.nii.gz")


# --- 3. round trips ------------------------------------------------------------------------


def test_surface_round_trip(tmp_path, surface_atlas):
    rng = np.random.default_rng(5)
    reference = write_gifti_pair(tmp_path, *planted_surface(surface_atlas, 3, rng)[1])
    values = rng.standard_normal((N_PARCELS, 7))
    images = project_parcels(values, surface_atlas, list(reversed(reference)))
    assert len(images) == 2
    paths = [
        save_image(img, tmp_path / f"{STEM}_hemi-{h}_space-fsaverage5_desc-samba_bold.func.gii")
        for img, h in zip(images, "LR")
    ]
    for path, hemi, structure in zip(paths, ("lh", "rh"), ("CortexLeft", "CortexRight")):
        gii = nib.load(str(path))
        assert len(gii.darrays) == 7
        assert gii.darrays[0].data.shape == (10242,)
        assert gii.darrays[0].data.dtype == np.float32
        assert gii.darrays[0].intent == nib.nifti1.intent_codes["NIFTI_INTENT_TIME_SERIES"]
        assert gii.meta["AnatomicalStructurePrimary"] == structure
        assert float(gii.meta["TimeStep"]) == 1400.0
        wall = surface_atlas.surface_labels[hemi] == 0
        assert (gii.agg_data()[wall] == 0).all()
    data, _ = load_surface_bold(paths)
    np.testing.assert_allclose(parcellate_bold(data, surface_atlas), values, rtol=1e-6, atol=1e-6)

    single = project_parcels(values[:, 0], surface_atlas, reference)
    assert [len(img.darrays) for img in single] == [1, 1]
    assert "TimeStep" not in single[0].meta
    np.testing.assert_array_equal(
        single[1].darrays[0].data,
        np.r_[0, values[:, 0]].astype(np.float32)[surface_atlas.surface_labels["rh"]],
    )


@pytest.mark.parametrize("res_mm", [2.0, 3.0])
def test_volume_round_trip(tmp_path, volume_atlas, res_mm):
    shape = (91, 109, 91) if res_mm == 2.0 else (61, 73, 61)
    affine = np.array(
        [[-res_mm, 0, 0, 90], [0, res_mm, 0, -126], [0, 0, res_mm, -72], [0, 0, 0, 1]]
    )
    reference = nib.Nifti1Image(np.zeros(shape + (4,), np.int16), affine)
    reference.header.set_zooms((res_mm,) * 3 + (2.5,))
    reference.header.set_xyzt_units("mm", "sec")
    rng = np.random.default_rng(6)
    values = rng.standard_normal((N_PARCELS, 9))

    (img,) = project_parcels(values, volume_atlas, reference)
    path = save_image(img, tmp_path / "pred_bold.nii.gz")
    out = nib.load(str(path))
    assert out.shape == shape + (9,)
    np.testing.assert_array_equal(out.affine, reference.affine)
    assert out.header.get_zooms() == pytest.approx((res_mm,) * 3 + (2.5,))
    assert out.get_data_dtype() == np.float32
    back = parcellate_bold(out, volume_atlas)
    np.testing.assert_allclose(back, values, rtol=1e-6, atol=1e-6)

    (single,) = project_parcels(values[:, 0], volume_atlas, reference, tr_s=1.4)
    assert single.shape == shape
    (ts,) = project_parcels(values, volume_atlas, reference, tr_s=1.4)
    assert ts.header.get_zooms()[3] == pytest.approx(1.4)


# --- 4. cleaning -------------------------------------------------------------------------


def test_clean_removes_planted_confound_and_trend():
    rng = np.random.default_rng(7)
    n = 200
    t = np.arange(n)
    s = rng.standard_normal((3, n))
    c = np.cumsum(rng.standard_normal(n))  # slow drifting confound, correlated in time
    signals = s + 3 * c + 0.05 * t + 10.0
    assert np.corrcoef(signals[0], s[0])[0, 1] < 0.5
    cleaned = clean_parcel_bold(signals, tr_s=2.0, confounds=pd.DataFrame({"c": c}))
    assert cleaned.shape == (3, n)
    for k in range(3):
        assert np.corrcoef(cleaned[k], s[k])[0, 1] > 0.97
    # Detrending alone removes a mean and a pure linear trend completely.
    trend_only = clean_parcel_bold(np.vstack([0.3 * t + 5.0, -2.0 * t]), tr_s=2.0)
    np.testing.assert_allclose(trend_only, 0, atol=1e-9)
    # Not z-scored: the residual keeps the scale of the data.
    assert np.std(cleaned, axis=1) == pytest.approx(np.std(s, axis=1), rel=0.2)


def test_clean_keeps_nan_parcels_and_checks_confound_rows():
    rng = np.random.default_rng(8)
    signals = rng.standard_normal((4, 50))
    signals[2] = np.nan
    cleaned = clean_parcel_bold(signals, tr_s=1.0, confounds=rng.standard_normal((50, 2)))
    assert np.isnan(cleaned[2]).all() and np.isfinite(np.delete(cleaned, 2, 0)).all()
    with pytest.raises(DataError, match=r"48 rows.*50 volumes"):
        clean_parcel_bold(signals, tr_s=1.0, confounds=rng.standard_normal((48, 2)))


# --- 5. real data ------------------------------------------------------------------------


def test_real_gifti_pair_parcellates(real_gifti_pair, surface_atlas):
    data, n_lh = load_surface_bold(real_gifti_pair)
    assert data.shape == (20484, 170) and n_lh == 10242
    parcels = parcellate_bold(data, surface_atlas)
    assert parcels.shape == (N_PARCELS, 170)
    assert np.isfinite(parcels).all()
    assert (parcels.std(axis=1) > 0).all()
    assert bold_repetition_time(real_gifti_pair) == 1.4
    assert bold_repetition_time(real_gifti_pair, tr_s=2.0) == 2.0


def test_real_confounds_without_fmriprep_names(real_func, caplog):
    tsv = real_func / f"{STEM}_desc-confounds_timeseries.tsv"
    raw = pd.read_csv(tsv, sep="\t")
    assert raw.shape == (170, 29)
    with caplog.at_level(logging.WARNING, logger="samba_bids.bold"):
        confounds = select_confounds(tsv)
    assert any("fMRIPrep" in r.getMessage() for r in caplog.records)
    expected = [c for c in raw.columns if raw[c].nunique() > 1]
    assert list(confounds.columns) == expected
    assert 0 < len(expected) < 29  # the real table has constant columns (spikes, intercept)
    assert confounds.shape == (170, len(expected))
    pd.testing.assert_frame_equal(select_confounds(tsv, "all"), confounds)
    assert select_confounds(tsv, "none") is None


def test_real_confounds_clean_real_parcels(real_func, real_gifti_pair, surface_atlas):
    confounds = select_confounds(real_func / f"{STEM}_desc-confounds_timeseries.tsv")
    parcels = parcellate_bold(load_surface_bold(real_gifti_pair)[0], surface_atlas)
    cleaned = clean_parcel_bold(parcels, tr_s=1.4, confounds=confounds)
    assert cleaned.shape == (N_PARCELS, 170) and np.isfinite(cleaned).all()
    # Residuals are orthogonal to every regressor (after their own centring).
    centred = confounds.to_numpy() - confounds.to_numpy().mean(axis=0)
    assert np.abs(centred.T @ cleaned.T).max() < 1e-6 * np.abs(parcels).max() * 170


def test_fmriprep_confounds_auto_subset(tmp_path, caplog):
    rng = np.random.default_rng(9)
    n = 30
    names = [
        "global_signal",
        "csf",
        "framewise_displacement",
        "a_comp_cor_00",
        "trans_x",
        "trans_y",
        "trans_z",
        "rot_x",
        "rot_y",
        "rot_z",
    ]
    table = pd.DataFrame(rng.standard_normal((n, len(names))), columns=names)
    table["rot_z"] = 0.0  # constant: dropped
    for base in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"):
        table[f"{base}_derivative1"] = table[base].diff()  # NaN in the first row
    table["framewise_displacement"] = table["framewise_displacement"].astype(object)
    table.loc[0, "framewise_displacement"] = np.nan
    tsv = tmp_path / f"{STEM}_desc-confounds_timeseries.tsv"
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    assert "n/a" in tsv.read_text()

    with caplog.at_level(logging.WARNING, logger="samba_bids.bold"):
        confounds = select_confounds(tsv, "auto")
    assert not caplog.records
    # white_matter is absent, rot_z and rot_z_derivative1 are constant.
    expected = [
        c
        for c in FMRIPREP_AUTO_CONFOUNDS
        if c not in ("white_matter", "rot_z", "rot_z_derivative1")
    ]
    assert list(confounds.columns) == expected
    assert len(expected) == 11
    assert (confounds.loc[0, [c for c in expected if c.endswith("derivative1")]] == 0).all()
    np.testing.assert_allclose(confounds["csf"], table["csf"])
    everything = select_confounds(tsv, "all")
    assert {"global_signal", "a_comp_cor_00", "framewise_displacement"} <= set(everything)
    assert not everything.isna().any().any()
    with pytest.raises(UsageError, match="auto"):
        select_confounds(tsv, "36P")


# --- 6. errors ---------------------------------------------------------------------------


def test_missing_hemisphere(tmp_path):
    name = f"{STEM}_hemi-L_space-fsaverage5_bold.func.gii"
    left = write_gifti(tmp_path / name, np.ones((5, 3)), "L")
    with pytest.raises(DataError, match="hemi-R") as err:
        load_surface_bold([left])
    assert left.name in str(err.value)
    with pytest.raises(DataError, match=left.name):
        load_surface_bold([left, left])


def test_hemispheres_with_different_volume_counts(tmp_path):
    left = write_gifti(tmp_path / f"{STEM}_hemi-L_bold.func.gii", np.ones((5, 3)), "L")
    right = write_gifti(tmp_path / f"{STEM}_hemi-R_bold.func.gii", np.ones((5, 4)), "R")
    with pytest.raises(DataError, match="3 volumes") as err:
        load_surface_bold([left, right])
    assert left.name in str(err.value) and right.name in str(err.value)


def test_vertex_count_mismatch_names_space(tmp_path, surface_atlas):
    n = 2562  # fsaverage4
    left, right = write_gifti_pair(tmp_path, np.ones((n, 2)), np.ones((n, 2)), space="fsaverage4")
    data, _ = load_surface_bold([left, right])
    with pytest.raises(DataError, match="--bold-space") as err:
        parcellate_bold(data, surface_atlas, name=left.name)
    message = str(err.value)
    assert left.name in message and "5124" in message and "fsaverage5" in message


def test_truncated_or_unreadable_files(tmp_path):
    img = nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 8, 6), np.float32), np.eye(4))
    img.header.set_zooms((2.0, 2.0, 2.0, 1.4))
    for suffix in (".nii.gz", ".nii"):
        path = tmp_path / f"{STEM}_space-MNI152NLin6Asym_bold{suffix}"
        nib.save(img, str(path))
        assert load_volume_bold(path).shape == (8, 8, 8, 6)  # intact file loads
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
        with pytest.raises(DataError, match="truncated") as err:
            load_volume_bold(path)
        assert path.name in str(err.value)

    gii = write_gifti(tmp_path / f"{STEM}_hemi-L_bold.func.gii", np.ones((5, 3)), "L")
    gii.write_bytes(gii.read_bytes()[:-200])
    with pytest.raises(DataError, match=gii.name):
        load_surface_bold([gii])
    # The TR is read from the file meta alone (before the first data array): a file cut
    # inside its header fails there too.
    assert bold_repetition_time(gii) == pytest.approx(1.4)
    gii.write_bytes(gii.read_bytes()[:150])
    with pytest.raises(DataError, match=gii.name):
        bold_repetition_time(gii)


def test_not_4d_and_nan_only_nifti(tmp_path):
    path3d = tmp_path / "sub-01_bold3d.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), str(path3d))
    with pytest.raises(DataError, match="4-D") as err:
        load_volume_bold(path3d)
    assert path3d.name in str(err.value)
    path_nan = tmp_path / "sub-01_nan_bold.nii"
    nib.save(nib.Nifti1Image(np.full((4, 4, 4, 3), np.nan, np.float32), np.eye(4)), str(path_nan))
    with pytest.raises(DataError, match=path_nan.name):
        load_volume_bold(path_nan)


def test_missing_repetition_time(tmp_path):
    left, right = write_gifti_pair(
        tmp_path, np.ones((5, 3)), np.ones((5, 3)), time_step_ms=None
    )
    with pytest.raises(DataError, match="--repetition-time") as err:
        bold_repetition_time([left, right])
    assert left.name in str(err.value)
    assert bold_repetition_time([left, right], tr_s=2.0) == 2.0
    with pytest.raises(DataError, match=left.name):
        bold_repetition_time([left, right], tr_s=0.0)

    img = nib.Nifti1Image(np.ones((4, 4, 4, 3), np.float32), np.eye(4))
    img.header.set_zooms((2.0, 2.0, 2.0, 0.0))
    path = tmp_path / f"{STEM}_space-MNI152NLin6Asym_bold.nii"
    nib.save(img, str(path))
    with pytest.raises(DataError, match="RepetitionTime") as err:
        bold_repetition_time(path)
    assert path.name in str(err.value)
    img.header.set_zooms((2.0, 2.0, 2.0, 1500.0))
    img.header.set_xyzt_units("mm", "msec")
    nib.save(img, str(path))
    assert bold_repetition_time(path) == pytest.approx(1.5)


def test_unparseable_confounds(tmp_path):
    tsv = tmp_path / f"{STEM}_desc-confounds_timeseries.tsv"
    tsv.write_text("a\tb\n1\t2\n1\t2\t3\t4\n")
    with pytest.raises(DataError, match=tsv.name):
        select_confounds(tsv)
    tsv.write_text("a\tb\n1\tx\n2\ty\n")
    with pytest.raises(DataError, match="non-numeric"):
        select_confounds(tsv, "all")


# --- 7. against nilearn's fMRIPrep interface and maskers -----------------------------------


def _nilearn_auto_confounds(tsv, n_volumes):
    """nilearn's nearest strategy to ``--confounds auto`` on ``tsv`` (None when it refuses).

    nilearn finds the table from a BOLD file name in fMRIPrep naming beside it.
    """
    import warnings

    from nilearn.interfaces.fmriprep import load_confounds

    tsv = Path(tsv)
    stem = tsv.name.replace("_desc-confounds_timeseries.tsv", "")
    bold = tsv.parent / f"{stem}_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, n_volumes), np.float32), np.eye(4)), bold)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            confounds, _ = load_confounds(
                str(bold), strategy=("motion", "wm_csf"), motion="derivatives",
                wm_csf="basic", demean=False,
            )
    except (ValueError, KeyError):
        return None
    return confounds


def test_nilearn_load_confounds_is_not_our_auto_selection(tmp_path, real_func):
    """Why select_confounds keeps its own code (see the comment there)."""
    import shutil

    # The real table has no fMRIPrep names: ours takes every non-constant column, nilearn
    # refuses it.
    real = tmp_path / "real"
    real.mkdir()
    tsv = shutil.copy(real_func / f"{STEM}_desc-confounds_timeseries.tsv", real)
    assert select_confounds(tsv).shape[1] > 0
    assert _nilearn_auto_confounds(tsv, 170) is None

    # A complete fMRIPrep table: the same columns and values, except the first row of the
    # derivatives (NaN in the file): 0 here, back-filled from the second row by nilearn.
    rng = np.random.default_rng(12)
    n = 30
    names = ["global_signal", "csf", "white_matter", "a_comp_cor_00",
             "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    table = pd.DataFrame(rng.standard_normal((n, len(names))), columns=names)
    for base in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"):
        table[f"{base}_derivative1"] = table[base].diff()
    tsv = tmp_path / f"{STEM}_desc-confounds_timeseries.tsv"
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    ours = select_confounds(tsv, "auto")
    theirs = _nilearn_auto_confounds(tsv, n)
    assert list(ours.columns) == list(FMRIPREP_AUTO_CONFOUNDS)
    assert sorted(theirs.columns) == sorted(ours.columns)
    theirs = theirs[ours.columns]
    pd.testing.assert_frame_equal(theirs.iloc[1:], ours.iloc[1:])
    derivatives = [c for c in ours.columns if c.endswith("_derivative1")]
    assert (ours.loc[0, derivatives] == 0).all()
    np.testing.assert_array_equal(theirs.loc[0, derivatives], ours.loc[1, derivatives])

    # Part of the columns (no white_matter, as in test_fmriprep_confounds_auto_subset; no
    # derivatives, as in the synthetic datasets): ours keeps those present, nilearn refuses.
    for dropped in (["white_matter"], derivatives):
        table.drop(columns=dropped).to_csv(tsv, sep="\t", index=False, na_rep="n/a")
        assert select_confounds(tsv, "auto").shape[1] == 14 - len(dropped)
        assert _nilearn_auto_confounds(tsv, n) is None


def test_projection_equals_nilearn_inverse_transform(templates_dir, surface_atlas, volume_atlas):
    """For finite values, project_parcels paints what the maskers' inverse_transform does."""
    import warnings

    from nilearn.maskers import NiftiLabelsMasker, SurfaceLabelsMasker
    from nilearn.surface import PolyMesh, SurfaceImage

    from samba_bids.bold import labels_on_grid

    rng = np.random.default_rng(13)
    values = rng.standard_normal((N_PARCELS, 3))

    # Volume, on a 3 mm grid other than the atlas's (the atlas is resampled to it).
    affine = np.array([[-3.0, 0, 0, 90], [0, 3.0, 0, -126], [0, 0, 3.0, -72], [0, 0, 0, 1]])
    reference = nib.Nifti1Image(np.zeros((61, 73, 61, 3), np.int16), affine)
    (ours,) = project_parcels(values, volume_atlas, reference, tr_s=1.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masker = NiftiLabelsMasker(labels_img=labels_on_grid(volume_atlas, (61, 73, 61), affine))
        masker.fit()
        present = np.array([v for k, v in masker.region_ids_.items() if k != "background"])
        theirs = masker.inverse_transform(values[present - 1].T.astype(np.float32))
    np.testing.assert_array_equal(theirs.affine, ours.affine)
    np.testing.assert_array_equal(np.asarray(theirs.dataobj), np.asarray(ours.dataobj))

    # Surface (fsaverage5): the masker needs the template meshes.
    surf = templates_dir / "fsaverage5" / "surf"
    labels = SurfaceImage(
        mesh=PolyMesh(left=str(surf / "lh.white"), right=str(surf / "rh.white")),
        data={"left": surface_atlas.surface_labels["lh"],
              "right": surface_atlas.surface_labels["rh"]},
    )
    reference = [GiftiImage(meta=GiftiMetaData({"AnatomicalStructurePrimary": s}))
                 for s in ("CortexLeft", "CortexRight")]
    ours = project_parcels(values, surface_atlas, reference, tr_s=1.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SurfaceLabelsMasker(labels_img=labels).fit().inverse_transform(
            values.T.astype(np.float32)
        )
    for image, part in zip(ours, ("left", "right")):
        np.testing.assert_array_equal(
            np.asarray(theirs.data.parts[part]),
            np.stack([array.data for array in image.darrays], axis=1),
        )
