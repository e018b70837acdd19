"""samba-bids-fetch-templates against local copies of its sources (no internet here).

The sources are rebuilt from ``../shared/data/templates`` in the form each official source
publishes them (CBIG annotations and fs_LR 32k dlabels, TemplateFlow volumes and tables, HCP's
91k grayordinate file, MNE's BEM archive) and served as ``file://`` URLs or by a local HTTP
server on 127.0.0.1. The real downloads from the internet are not run by these tests.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import inspect
import json
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from samba_bids.cli.fetch import main as fetch_main
from samba_bids.errors import CantCreateError, DataError, NoInputError, UsageError
from samba_bids.templates import (
    MNE_FSAVERAGE_BEM_MD5,
    MNE_FSAVERAGE_BEM_URL,
    fetch_sources,
    fetch_templates,
    find_templates_dir,
    is_fallback_templates,
    read_cifti_labels,
    schaefer_annot_name,
    surface_atlas,
)

SCALES = (100, 200)
ALL_SPACES = ("fsaverage5", "MNI152NLin6Asym", "fsLR", "fsaverage")
CORTEX = ("CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT")


def _fslr_32k_dlabel(shared_dlabel: Path, out: Path) -> None:
    """A CBIG-style fs_LR 32k dlabel (cortex only, every vertex) from a 91k dlabel."""
    import nibabel as nib
    from nibabel.cifti2.cifti2_axes import BrainModelAxis

    labels, _, models = read_cifti_labels(shared_dlabel)
    label_axis = nib.load(str(shared_dlabel)).header.get_axis(0)
    per_hemi, axes = [], []
    for structure in CORTEX:
        n_vertices = models.nvertices[structure]
        values = np.zeros(n_vertices, dtype=np.float32)
        rows = models.name == structure
        values[models.vertex[rows]] = labels[rows]
        per_hemi.append(values)
        axes.append(BrainModelAxis.from_surface(np.arange(n_vertices), n_vertices, structure))
    header = nib.Cifti2Header.from_axes((label_axis, axes[0] + axes[1]))
    img = nib.Cifti2Image(np.concatenate(per_hemi)[None, :], header)
    img.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_LABELS")
    img.to_filename(str(out))


def _greyordinates(shared_dlabel: Path, out: Path) -> None:
    """An HCP-style ``91282_Greyordinates.dscalar.nii`` (ones on the 91k grayordinates)."""
    import nibabel as nib
    from nibabel.cifti2.cifti2_axes import ScalarAxis

    models = nib.load(str(shared_dlabel)).header.get_axis(1)
    header = nib.Cifti2Header.from_axes((ScalarAxis(["91282_Greyordinates"]), models))
    img = nib.Cifti2Image(np.ones((1, len(models)), dtype=np.float32), header)
    img.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_SCALARS")
    img.to_filename(str(out))


def _midthickness(out: Path, n_vertices: int, seed: int) -> None:
    """A stand-in fsLR 32k mesh (made-up coordinates, the right vertex count)."""
    import nibabel as nib

    coords = np.random.default_rng(seed).normal(scale=50.0, size=(n_vertices, 3))
    img = nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(coords.astype(np.float32), intent="NIFTI_INTENT_POINTSET"),
        nib.gifti.GiftiDataArray(np.array([[0, 1, 2]], dtype=np.int32),
                                 intent="NIFTI_INTENT_TRIANGLE"),
    ])
    nib.save(img, str(out))


def _mne_bem_zip(work: Path, out: Path) -> None:
    """An archive shaped like MNE's fsaverage BEM zip, with a small three-layer BEM."""
    import mne
    from mne.surface import _get_ico_surface

    bem_dir = work / "fsaverage" / "bem"
    bem_dir.mkdir(parents=True)
    ico = _get_ico_surface(2)
    for name, radius_mm in (("inner_skull", 80.0), ("outer_skull", 85.0), ("outer_skin", 90.0)):
        mne.write_surface(bem_dir / f"{name}.surf", ico["rr"] * radius_mm, ico["tris"])
    model = mne.make_bem_model("fsaverage", ico=None, conductivity=(0.3, 0.006, 0.3),
                               subjects_dir=work, verbose=False)
    mne.write_bem_solution(bem_dir / "fsaverage-5120-5120-5120-bem-sol.fif",
                           mne.make_bem_solution(model, verbose=False), verbose=False)
    shipped = Path(mne.__file__).parent / "data" / "fsaverage"
    with zipfile.ZipFile(out, "w") as archive:
        archive.write(bem_dir / "fsaverage-5120-5120-5120-bem-sol.fif",
                      "bem/fsaverage-5120-5120-5120-bem-sol.fif")
        for name in ("fsaverage-trans.fif", "fsaverage-fiducials.fif", "fsaverage-head.fif",
                     "fsaverage-inner_skull-bem.fif"):
            archive.write(shipped / name, f"bem/{name}")
        archive.writestr("bem/fsaverage-ico-5-src.fif", b"not needed")


def make_local_sources(templates_dir: Path, folder: Path, scales=SCALES,
                       spaces=ALL_SPACES) -> dict:
    """Files as each official source publishes them; returns {source name: local path}."""
    import pandas as pd

    paths = {}
    for name in fetch_sources(scales, spaces):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        space, fname = name.split("/", 1)
        if space == "fsaverage5":
            path.write_bytes((templates_dir / "fsaverage5" / "label" / fname).read_bytes())
        elif space == "MNI152NLin6Asym" and fname.endswith(".tsv"):
            table = pd.read_csv(templates_dir / space / fname, sep="\t")
            if "100Parcels" in fname:  # as TemplateFlow's script wrote it: unnamed index
                table.set_index("index")[["name"]].rename_axis(None).to_csv(path, sep="\t")
            else:
                table.to_csv(path, sep="\t", index=False)
        elif space == "MNI152NLin6Asym":
            path.write_bytes((templates_dir / space / fname).read_bytes())
        elif fname.endswith("_order.dlabel.nii"):
            n = int(fname.split("_")[1].removesuffix("Parcels"))
            _fslr_32k_dlabel(templates_dir / "fsLR" / (
                f"tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{n}Parcels7Networks_dseg.dlabel.nii"),
                path)
        elif fname == "91282_Greyordinates.dscalar.nii":
            _greyordinates(templates_dir / "fsLR" / (
                "tpl-fsLR_den-91k_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.dlabel.nii"),
                path)
        elif fname.endswith("midthickness.surf.gii"):
            _midthickness(path, 32492, seed=len(paths))
        elif fname == "MNE-fsaverage-bem.zip":
            _mne_bem_zip(folder / "_bem_work", path)
        else:  # pragma: no cover
            raise AssertionError(f"no local stand-in for {name}")
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def local_sources(templates_dir, tmp_path_factory):
    """{source name: file:// URL} for every source of a fetch of SCALES and ALL_SPACES."""
    folder = tmp_path_factory.mktemp("sources")
    paths = make_local_sources(templates_dir, folder)
    return {name: path.as_uri() for name, path in paths.items()}


@pytest.fixture(scope="module")
def fetched(local_sources, tmp_path_factory):
    """A templates folder fetched from the local sources."""
    dest = tmp_path_factory.mktemp("fetch") / "templates"
    return fetch_templates(dest, scales=SCALES, spaces=ALL_SPACES, sources=local_sources)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args, **kwargs: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _leftovers(dest: Path) -> list:
    return [p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}-")]


def test_fetch_builds_a_complete_folder(fetched, templates_dir):
    from samba_bids.bold import load_bold_atlas
    from samba_bids.ephys.source import _find_three_layer_bem

    assert find_templates_dir(fetched) == fetched.resolve()
    assert not is_fallback_templates(fetched)
    assert _leftovers(fetched) == []
    for n in SCALES:
        for space in ("fsaverage5", "MNI152NLin6Asym", "fsLR"):
            atlas = load_bold_atlas(fetched, space, n)
            assert len(atlas.names) == n
            assert atlas.names[0] == "7Networks_LH_Vis_1"
        # the annotations are CBIG's (copied), the surfaces nilearn's FreeSurfer fsaverage5
        labels, names = surface_atlas(fetched, "fsaverage5", n)
        ref_labels, ref_names = surface_atlas(templates_dir, "fsaverage5", n)
        assert names == ref_names and all(np.array_equal(labels[h], ref_labels[h])
                                          for h in ("lh", "rh"))
        # fsLR: the 32k labels placed back into the 91k grayordinates are the reference
        got, got_names, got_models = read_cifti_labels(
            fetched / "fsLR" / f"tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{n}Parcels7Networks_"
                               "dseg.dlabel.nii")
        ref, ref_names, ref_models = read_cifti_labels(
            templates_dir / "fsLR" / f"tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{n}Parcels7"
                                     "Networks_dseg.dlabel.nii")
        assert np.array_equal(got, ref) and got_names == ref_names
        assert len(got_models) == 91282 and (got[got_models.volume_mask] == 0).all()
    for hemi in ("lh", "rh"):
        for surf in ("white", "pial", "inflated", "sphere", "sphere.reg"):
            assert (fetched / "fsaverage5" / "surf" / f"{hemi}.{surf}").is_file()
    table = (fetched / "MNI152NLin6Asym" /
             "tpl-MNI152NLin6Asym_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv")
    assert table.read_text().startswith("index\tname")  # unnamed index column named
    assert _find_three_layer_bem(fetched, "fsaverage5").name == (
        "fsaverage-5120-5120-5120-bem-sol.fif")
    assert not (fetched / "fsaverage" / "bem" / "fsaverage-ico-5-src.fif").exists()
    assert not (fetched / ".downloads").exists()

    description = json.loads((fetched / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Name"] == "samba-bids-fetch-templates"
    assert description["Scales"] == list(SCALES)
    assert set(description["Spaces"]) == set(ALL_SPACES)
    for relpath in description["Files"]:
        assert (fetched / relpath).is_file(), relpath
    for name, entry in description["Downloads"].items():
        assert entry["URL"].startswith("file://") and len(entry["SHA256"]) == 64
        assert "mirror" in entry["Provider"]
    readme = (fetched / "README.md").read_text()
    assert "fsLR/tpl-fsLR_den-91k_atlas-Schaefer2018_desc-200Parcels7Networks_dseg.dlabel.nii" \
        in readme and "91282_Greyordinates" in readme


def test_rerun_is_a_no_op(fetched, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in fetched.rglob("*")}
    # the sources are not even read: they point nowhere
    nowhere = {name: (tmp_path / "missing").as_uri() for name in fetch_sources(SCALES)}
    assert fetch_templates(fetched, scales=(100,), spaces=("fsLR",), sources=nowhere) == fetched
    assert {p: p.stat().st_mtime_ns for p in fetched.rglob("*")} == before
    # a request the folder does not cover is refused rather than mixed into it
    with pytest.raises(CantCreateError, match="remove it or fetch into another folder"):
        fetch_templates(fetched, scales=(400,), spaces=("fsLR",), sources=nowhere)


def test_unreachable_source_leaves_no_partial_folder(local_sources, tmp_path):
    dest = tmp_path / "templates"
    name = "MNI152NLin6Asym/tpl-MNI152NLin6Asym_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv"
    url = f"http://127.0.0.1:{_closed_port()}/{name.split('/')[1]}"
    sources = {**local_sources, name: url}
    with pytest.raises(NoInputError) as info:
        fetch_templates(dest, scales=(100,), spaces=("fsaverage5", "MNI152NLin6Asym"),
                        sources={k: v for k, v in sources.items()
                                 if k in fetch_sources((100,), ("fsaverage5", "MNI152NLin6Asym"))})
    message = str(info.value)
    assert message.startswith(f"cannot download {name} from {url} (")
    assert message.endswith("); run this command on a machine with internet, or copy a templates "
                            "folder and pass --templates-dir.")
    assert not dest.exists() and _leftovers(dest) == []


def test_http_download_404_and_hash_check(local_sources, http_server, tmp_path):
    root, base = http_server
    wanted = fetch_sources((100,), ("MNI152NLin6Asym",))
    sources = {}
    for name in wanted:
        fname = name.split("/")[1]
        (root / fname).write_bytes(Path(local_sources[name].removeprefix("file://")).read_bytes())
        sources[name] = f"{base}/{fname}"
    dest = fetch_templates(tmp_path / "mni", scales=(100,), spaces=("MNI152NLin6Asym",),
                           sources=sources)
    description = json.loads((dest / "dataset_description.json").read_text())
    assert all(e["URL"].startswith(base) for e in description["Downloads"].values())

    name = next(iter(wanted))
    with pytest.raises(NoInputError, match=rf"cannot download {name} from {base}/gone.*404"):
        fetch_templates(tmp_path / "t404", scales=(100,), spaces=("MNI152NLin6Asym",),
                        sources={**sources, name: f"{base}/gone.nii.gz"})
    with pytest.raises(DataError, match="sha256 .* expected 0000"):
        fetch_templates(tmp_path / "thash", scales=(100,), spaces=("MNI152NLin6Asym",),
                        sources={**sources, name: (sources[name], "sha256:" + "0" * 64)})
    for dest in (tmp_path / "t404", tmp_path / "thash"):
        assert not dest.exists() and _leftovers(dest) == []


def test_wrong_file_at_a_source_is_caught(local_sources, tmp_path):
    lh, rh = (f"fsaverage5/{h}.{schaefer_annot_name(100)}.annot" for h in ("lh", "rh"))
    sources = {lh: local_sources[rh], rh: local_sources[lh]}  # hemispheres swapped: still fine
    dest = fetch_templates(tmp_path / "swapped", scales=(100,), spaces=("fsaverage5",),
                           sources=sources)
    assert dest.is_dir()
    bad = {lh: local_sources["MNI152NLin6Asym/tpl-MNI152NLin6Asym_atlas-Schaefer2018_desc-"
                             "100Parcels7Networks_dseg.tsv"], rh: local_sources[rh]}
    with pytest.raises((DataError, ValueError)):
        fetch_templates(tmp_path / "bad", scales=(100,), spaces=("fsaverage5",), sources=bad)
    assert not (tmp_path / "bad").exists() and _leftovers(tmp_path / "bad") == []


def test_bad_requests(tmp_path):
    with pytest.raises(UsageError, match="scales"):
        fetch_templates(tmp_path / "a", scales=(150,))
    with pytest.raises(UsageError, match="spaces .* got MNI305"):
        fetch_templates(tmp_path / "a", spaces=("MNI305",))
    with pytest.raises(UsageError, match="unknown source"):
        fetch_templates(tmp_path / "a", scales=(100,), spaces=("fsaverage5",),
                        sources={"fsLR/x": "file:///x"})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(CantCreateError, match="exists"):
        fetch_templates(tmp_path / "full", scales=(100,), spaces=("fsaverage5",),
                        sources={n: "file:///nowhere" for n in fetch_sources((100,),
                                                                             ("fsaverage5",))})
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"


def test_command_line(local_sources, tmp_path, capsys):
    spaces = ("fsaverage5", "MNI152NLin6Asym")
    wanted = fetch_sources((100,), spaces)
    sources_file = tmp_path / "mirror.json"
    sources_file.write_text(json.dumps({k: local_sources[k] for k in wanted}))
    dest = tmp_path / "templates"
    argv = [str(dest), "--scales", "100", "--spaces", *spaces, "--sources-file",
            str(sources_file)]
    assert fetch_main(argv) == 0
    assert f"templates in {dest}" in capsys.readouterr().out
    assert fetch_main(argv) == 0  # rerun: nothing to do
    assert fetch_main(["--list-sources", str(tmp_path / "x"), "--scales", "100"]) == 0
    listed = capsys.readouterr().out
    assert "https://github.com/ThomasYeoLab/CBIG/raw/" in listed
    assert "https://templateflow.s3.amazonaws.com/tpl-MNI152NLin6Asym/" in listed
    sources_file.write_text(json.dumps({**{k: local_sources[k] for k in wanted},
                                        next(iter(wanted)): "file:///nowhere/x.annot"}))
    assert fetch_main([str(tmp_path / "t2"), "--scales", "100", "--spaces", *spaces,
                       "--sources-file", str(sources_file)]) == 66
    err = capsys.readouterr().err
    assert "cannot download" in err and "--templates-dir" in err
    assert fetch_main([str(tmp_path / "t3"), "--scales", "150"]) == 64


def test_official_table():
    """URLs of the official sources, and MNE's archive hash as the installed MNE has it."""
    import mne.datasets._fsaverage.base as mne_fsaverage

    table = fetch_sources((100, 200, 400), ALL_SPACES)
    assert len(table) == 3 * (2 + 2 + 1) + 1 + 2 + 1
    for name, source in table.items():
        assert source["url"].startswith("https://"), name
    source = inspect.getsource(mne_fsaverage)
    assert MNE_FSAVERAGE_BEM_URL in source and MNE_FSAVERAGE_BEM_MD5 in source
    assert table["fsaverage/MNE-fsaverage-bem.zip"]["known_hash"] == (
        f"md5:{MNE_FSAVERAGE_BEM_MD5}")


def test_sha256_of_downloads_is_hashlib_sha256(fetched, local_sources, tmp_path):
    """The SHA256 recorded per download (pooch.file_hash) is hashlib's, on small files too."""
    import pooch

    small = tmp_path / "small.bin"
    for content in (b"", b"samba-bids\n", bytes(range(256)) * 4099):  # 0 B, 11 B, > 1 MiB
        small.write_bytes(content)
        assert pooch.file_hash(str(small), alg="sha256") == hashlib.sha256(content).hexdigest()
    downloads = json.loads((fetched / "dataset_description.json").read_text())["Downloads"]
    assert set(downloads) == set(local_sources)
    for name, entry in downloads.items():
        content = Path(local_sources[name].removeprefix("file://")).read_bytes()
        assert entry["SHA256"] == hashlib.sha256(content).hexdigest(), name


def test_fetch_check_rejects_what_the_bold_stage_rejects(local_sources, templates_dir, tmp_path):
    """The fetch checks atlases without the BOLD stage, with the same checks and messages."""
    import nibabel as nib

    from samba_bids.bold import load_bold_atlas
    from samba_bids.templates.atlases import check_atlas

    image = "tpl-MNI152NLin6Asym_res-02_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.nii.gz"
    table = "tpl-MNI152NLin6Asym_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv"
    img = nib.load(str(templates_dir / "MNI152NLin6Asym" / image))
    data = np.asanyarray(img.dataobj).copy()
    data[data == 7] = 0  # parcel 7 gone
    folder = tmp_path / "broken" / "MNI152NLin6Asym"
    folder.mkdir(parents=True)
    nib.Nifti1Image(data, img.affine, img.header).to_filename(str(folder / image))
    (folder / table).write_bytes((templates_dir / "MNI152NLin6Asym" / table).read_bytes())
    with pytest.raises(DataError) as bold_error:
        load_bold_atlas(folder.parent, "MNI152NLin6Asym", 100)
    with pytest.raises(DataError) as check_error:
        check_atlas(folder.parent, "MNI152NLin6Asym", 100)
    assert str(check_error.value) == str(bold_error.value)
    assert "lacks parcel(s) [7]" in str(bold_error.value)
    sources = {name: local_sources[name] for name in fetch_sources((100,), ("MNI152NLin6Asym",))}
    sources[f"MNI152NLin6Asym/{image}"] = (folder / image).as_uri()
    dest = tmp_path / "templates"
    with pytest.raises(DataError) as fetch_error:
        fetch_templates(dest, scales=(100,), spaces=("MNI152NLin6Asym",), sources=sources)
    assert str(fetch_error.value) == (
        f"The fetched MNI152NLin6Asym Schaefer-100 atlas does not load: {bold_error.value}")
    assert not dest.exists() and _leftovers(dest) == []
