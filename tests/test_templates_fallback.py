"""The offline templates fallback: built from nilearn's fsaverage5 and read by every reader.

No shared data are needed: the folder is built from what nilearn ships (about 2 s for two
scales) and a short simulation (40 s, 16 channels, about 10 s) runs on it.
"""

import json
import logging

import nibabel as nib
import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from samba_bids import simulate as sim
from samba_bids import templates
from samba_bids.ephys.source import template_labels
from samba_bids.errors import CantCreateError, NoInputError, UsageError

SCALES = (100, 200)
N_VERTICES = 10242  # fsaverage5, per hemisphere
PREFIX = "sub-01_task-rest"


@pytest.fixture(scope="module")
def fallback_dir(tmp_path_factory):
    return templates.build_fallback_templates(
        tmp_path_factory.mktemp("fallback") / "templates", scales=SCALES)


def _annot(fallback_dir, hemi, scale):
    path = (fallback_dir / "fsaverage5" / "label"
            / f"{hemi}.{templates.schaefer_annot_name(scale)}.annot")
    labels, ctab, names = nib.freesurfer.read_annot(str(path))
    return labels, ctab, [n.decode() for n in names]


def test_folder_has_the_fsaverage5_layout_and_says_what_it_is(fallback_dir):
    surf = fallback_dir / "fsaverage5" / "surf"
    for hemi in ("lh", "rh"):
        for name in ("white", "pial", "inflated", "sphere", "sphere.reg"):
            coords, faces = nib.freesurfer.read_geometry(str(surf / f"{hemi}.{name}"))
            assert coords.shape == (N_VERTICES, 3) and faces.shape == (20480, 3)
        for scale in SCALES:
            assert (fallback_dir / "fsaverage5" / "label"
                    / f"{hemi}.Schaefer2018_{scale}Parcels_7Networks_order.annot").is_file()
    assert not (fallback_dir / "MNI152NLin6Asym").exists()
    assert templates.is_fallback_templates(fallback_dir)
    description = json.loads((fallback_dir / templates.FALLBACK_DESCRIPTION).read_text())
    assert "NOT the Schaefer" in description["Description"]
    assert description["Scales"] == list(SCALES)
    assert description["VolumeSpaces"] == []
    assert "not the Schaefer 2018 atlas" in (fallback_dir / "README.md").read_text()
    # the sphere is nilearn's, radius 100 mm
    coords, _ = nib.freesurfer.read_geometry(str(surf / "lh.sphere"))
    np.testing.assert_allclose(np.linalg.norm(coords, axis=1), 100.0, atol=0.1)


@pytest.mark.parametrize("scale", SCALES)
def test_annotations_cover_the_cortex_with_connected_parcels(fallback_dir, scale):
    per_hemi = scale // 2
    for hemi in ("lh", "rh"):
        labels, ctab, names = _annot(fallback_dir, hemi, scale)
        assert len(names) == per_hemi + 1 and names[0] == templates._MEDIAL_WALL
        assert len(np.unique(ctab[:, 4])) == len(names)  # distinct annotation values
        assert labels.shape == (N_VERTICES,) and labels.min() >= 0  # every vertex labelled
        counts = np.bincount(labels, minlength=per_hemi + 1)
        assert 500 < counts[0] < 1000  # the medial wall (Schaefer's: ~870 vertices)
        assert counts[1:].min() > 0.5 * N_VERTICES / scale
        assert all(n.startswith(f"7Networks_{hemi.upper()}_Sphere") for n in names[1:])
        _, faces = nib.freesurfer.read_geometry(
            str(fallback_dir / "fsaverage5" / "surf" / f"{hemi}.white"))
        adjacency = templates._vertex_adjacency(faces, N_VERTICES)
        for k in range(1, per_hemi + 1):
            index = np.flatnonzero(labels == k)
            assert connected_components(adjacency[index][:, index], directed=False)[0] == 1


def test_build_is_deterministic(fallback_dir, tmp_path):
    again = templates.build_fallback_templates(tmp_path / "again", scales=(100,))
    for hemi in ("lh", "rh"):
        name = f"fsaverage5/label/{hemi}.{templates.schaefer_annot_name(100)}.annot"
        assert (again / name).read_bytes() == (fallback_dir / name).read_bytes()


@pytest.mark.parametrize("scale", SCALES)
def test_readers_read_it(fallback_dir, scale):
    labels, names = templates.surface_atlas(fallback_dir, "fsaverage5", scale)
    assert len(names) == scale
    assert labels["lh"].max() == scale // 2 and labels["rh"].min() == 0
    assert set(np.unique(labels["rh"])) == {0, *range(scale // 2 + 1, scale + 1)}
    centroids = templates.surface_parcel_centroids(fallback_dir, "fsaverage5", labels)
    assert centroids.shape == (scale, 3)
    assert (centroids[: scale // 2, 0] < 0).all() and (centroids[scale // 2:, 0] > 0).all()
    mne_labels = template_labels(fallback_dir, "fsaverage5", scale)
    assert [label.name for label in mne_labels] == [
        f"{n}-{'lh' if i < scale // 2 else 'rh'}" for i, n in enumerate(names)]
    for index, label in enumerate(mne_labels, start=1):
        hemi = label.hemi
        np.testing.assert_array_equal(label.vertices, np.flatnonzero(labels[hemi] == index))


@pytest.mark.parametrize("scale", SCALES)
def test_seven_groups_in_both_hemispheres(fallback_dir, scale):
    _, names = templates.surface_atlas(fallback_dir, "fsaverage5", scale)
    groups = sim.network_groups(names)
    assert groups.max() == templates.FALLBACK_N_GROUPS - 1
    per_hemi = sim.network_groups(names, bilateral=False)
    assert per_hemi.max() == 2 * templates.FALLBACK_N_GROUPS - 1
    half = scale // 2
    for g in range(templates.FALLBACK_N_GROUPS):
        assert (groups[:half] == g).any() and (groups[half:] == g).any()
    # Schaefer order: grouped, left then right with the same group order
    assert (np.diff(groups[:half]) >= 0).all() and (np.diff(groups[half:]) >= 0).all()


def test_build_refuses_bad_arguments(tmp_path):
    with pytest.raises(UsageError, match="even"):
        templates.build_fallback_templates(tmp_path / "odd", scales=(101,))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(CantCreateError, match="not an empty folder"):
        templates.build_fallback_templates(tmp_path / "full")


def test_find_templates_dir_builds_the_fallback_once_and_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("SAMBA_TEMPLATES", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SAMBA_TEMPLATES_FALLBACK", str(tmp_path / "fallback"))
    with pytest.raises(NoInputError, match="No templates folder"):
        templates.find_templates_dir()
    with pytest.raises(NoInputError):  # a folder given explicitly is never replaced
        templates.find_templates_dir(tmp_path / "typo", fallback=True)
    with caplog.at_level(logging.WARNING, logger="samba_bids.templates"):
        found = templates.find_templates_dir(fallback=True)
    assert found == (tmp_path / "fallback").resolve()
    assert "NOT the Schaefer atlas" in caplog.text
    marker = found / templates.FALLBACK_DESCRIPTION
    built_ns = marker.stat().st_mtime_ns
    assert json.loads(marker.read_text())["Scales"] == [100, 200, 400]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".fallback-")) == []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="samba_bids.templates"):
        assert templates.find_templates_dir(fallback=True) == found
    assert marker.stat().st_mtime_ns == built_ns  # reused, not rebuilt
    assert "sphere" in caplog.text  # and said so again
    # a real folder, when there is one, wins
    (tmp_path / "cache" / "samba-bids" / "templates").mkdir(parents=True)
    assert templates.find_templates_dir(fallback=True).name == "templates"


def test_simulation_runs_on_the_fallback_and_skips_mni(fallback_dir, tmp_path, caplog):
    with pytest.raises(NoInputError, match="MNI152NLin6Asym"):
        sim.simulate_dataset(tmp_path / "mni", fallback_dir, duration_s=40.0,
                             spaces=("MNI152NLin6Asym",))
    with caplog.at_level(logging.WARNING, logger="samba_bids.simulate"):
        root = sim.simulate_dataset(  # default spaces: fsaverage5 and MNI152NLin6Asym
            tmp_path / "ds", fallback_dir, duration_s=40.0, n_channels=16,
            ephys_scale=100, bold_scale=200)
    assert "MNI152NLin6Asym space is skipped" in caplog.text
    eeg = root / "sub-01" / "eeg"
    assert (eeg / f"{PREFIX}_eeg.eeg").stat().st_size > 0
    assert (eeg / f"{PREFIX}_eeg.vhdr").is_file()
    func = root / "derivatives" / "preproc" / "sub-01" / "func"
    for hemi in ("L", "R"):
        gii = nib.load(func / f"{PREFIX}_hemi-{hemi}_space-fsaverage5_bold.func.gii")
        assert len(gii.darrays) == 20 and gii.darrays[0].data.shape == (N_VERTICES,)
    assert not list(func.glob("*MNI152NLin6Asym*"))
    truth = json.loads((root / "derivatives" / "truth" / "sub-01" / "func"
                        / f"{PREFIX}_desc-truth_parameters.json").read_text())
    assert truth["Spaces"] == ["fsaverage5"]
    assert truth["ForwardModel"]["HeadModel"].startswith("sphere model")
    assert len(truth["LabelVertices"]) == 100 and min(truth["LabelVertices"].values()) > 0
    noisy = np.loadtxt(root / "derivatives" / "truth" / "sub-01" / "func"
                       / f"{PREFIX}_desc-noisy_timeseries.tsv", skiprows=1)
    assert noisy.shape == (20, 200) and np.isfinite(noisy).all()


def test_simulate_command_falls_back(fallback_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("SAMBA_TEMPLATES", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SAMBA_TEMPLATES_FALLBACK", str(fallback_dir))  # built: reused
    with caplog.at_level(logging.WARNING):
        code = sim.main([str(tmp_path / "ds"), "--duration", "20", "--channels", "8",
                         "--ephys-scale", "100", "--bold-scale", "100"])
    assert code == 0
    assert "NOT the Schaefer atlas" in caplog.text
    assert (tmp_path / "ds" / "sub-01" / "eeg" / f"{PREFIX}_eeg.eeg").is_file()
