"""Locate templates and atlases in the offline templates folder.

Layout (the same as ``../shared/data/templates`` and what ``--templates-dir`` expects)::

    fsaverage5/ (and/or fsaverage/)   FreeSurfer subject: surf/, label/{lh,rh}.Schaefer2018_*.annot
    MNI152NLin6Asym/                  tpl-MNI152NLin6Asym_res-02_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.nii.gz + .tsv
    fsLR/                             91k dlabel files

Parcels are numbered 1..N in the Schaefer 2018 order (left hemisphere 1..N/2, right N/2+1..N);
0 is background or the medial wall. Nothing is downloaded here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import NoInputError

#: Surface spaces read from a FreeSurfer subject folder of the same name.
SURFACE_SPACES = ("fsaverage5", "fsaverage6", "fsaverage")
VOLUME_SPACES = ("MNI152NLin6Asym",)
_MEDIAL_WALL = "Background+FreeSurfer_Defined_Medial_Wall"


def find_templates_dir(templates_dir=None) -> Path:
    """Return the templates folder: the argument, else ``$SAMBA_TEMPLATES``, else the cache.

    Parameters
    ----------
    templates_dir : path-like | None
        Folder given on the command line (``--templates-dir``).

    Returns
    -------
    Path
        An existing folder.

    Raises
    ------
    NoInputError
        If no candidate folder exists.
    """
    candidates = []
    if templates_dir is not None:
        candidates.append(Path(templates_dir).expanduser())
    else:
        if os.environ.get("SAMBA_TEMPLATES"):
            candidates.append(Path(os.environ["SAMBA_TEMPLATES"]).expanduser())
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        candidates.append(cache / "samba-bids" / "templates")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise NoInputError(
        f"No templates folder found (looked in {', '.join(map(str, candidates))}); "
        "pass --templates-dir PATH or set SAMBA_TEMPLATES."
    )


def schaefer_annot_name(n_parcels: int) -> str:
    """FreeSurfer annotation name of Schaefer 2018, 7 networks, ``n_parcels`` parcels."""
    return f"Schaefer2018_{n_parcels}Parcels_7Networks_order"


def surface_subject_dir(templates_dir, subject="fsaverage5") -> Path:
    """Folder of a FreeSurfer template subject, e.g. ``templates/fsaverage5``.

    Raises
    ------
    NoInputError
        If the folder or its ``surf/`` is missing.
    """
    path = Path(templates_dir) / subject
    if not (path / "surf").is_dir():
        raise NoInputError(
            f"{path}/surf is missing from the templates folder; fetch the {subject} "
            "template into --templates-dir."
        )
    return path


def surface_atlas(templates_dir, subject="fsaverage5", n_parcels=200):
    """Schaefer 2018 parcel index per vertex on a FreeSurfer template surface.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    subject : str
        ``fsaverage5``, ``fsaverage6`` or ``fsaverage``.
    n_parcels : int
        100, 200 or 400.

    Returns
    -------
    labels : dict of {'lh', 'rh'} to ndarray of int, shape (n_vertices,)
        Parcel index per vertex, 1..n_parcels in Schaefer order, 0 for the medial wall.
    names : list of str, length n_parcels
        Parcel names as in the atlas (e.g. ``7Networks_LH_Vis_1``), in index order.

    Raises
    ------
    NoInputError
        If an annotation file is missing.
    """
    import nibabel as nib

    subject_dir = surface_subject_dir(templates_dir, subject)
    annot = schaefer_annot_name(n_parcels)
    labels, names = {}, []
    offset = 0
    for hemi in ("lh", "rh"):
        fname = subject_dir / "label" / f"{hemi}.{annot}.annot"
        if not fname.is_file():
            raise NoInputError(
                f"{fname} is missing; add the Schaefer 2018 {n_parcels}-parcel annotation "
                "to the templates folder or choose another --*-atlas-scale."
            )
        vertex_label, _, label_names = nib.freesurfer.read_annot(str(fname))
        label_names = [n.decode() if isinstance(n, bytes) else str(n) for n in label_names]
        keep = [i for i, n in enumerate(label_names) if n != _MEDIAL_WALL and "Unknown" not in n]
        lut = np.zeros(len(label_names) + 1, dtype=int)  # -1 (unlabelled) maps to lut[-1] = 0
        for new, old in enumerate(keep, start=1):
            lut[old] = new + offset
        labels[hemi] = lut[vertex_label]
        names.extend(label_names[i] for i in keep)
        offset += len(keep)
    if len(names) != n_parcels:
        raise NoInputError(
            f"{subject_dir / 'label'}: expected {n_parcels} parcels in {annot}, found {len(names)}."
        )
    return labels, names


def volume_atlas(templates_dir, space="MNI152NLin6Asym", n_parcels=200, res="02"):
    """Schaefer 2018 volume atlas in a template space.

    Returns
    -------
    image_path : Path
        ``tpl-..._res-02_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.nii.gz``; values
        1..n_parcels, 0 background.
    names : list of str, length n_parcels
        Parcel names in index order, from the atlas ``.tsv``.

    Raises
    ------
    NoInputError
        If the image or its table is missing.
    """
    folder = Path(templates_dir) / space
    stem = f"tpl-{space}_res-{res}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.nii.gz"
    image = folder / stem
    table = folder / f"tpl-{space}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.tsv"
    for fname in (image, table):
        if not fname.is_file():
            raise NoInputError(
                f"{fname} is missing from the templates folder; fetch the Schaefer 2018 "
                f"{n_parcels}-parcel atlas for {space} into --templates-dir."
            )
    df = pd.read_csv(table, sep="\t").sort_values("index")
    return image, [str(n) for n in df["name"]]


def surface_parcel_centroids(templates_dir, subject, labels, surface="white"):
    """Centroid of each parcel on a template surface, in mm (FreeSurfer surface RAS).

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    subject : str
        Template subject, e.g. ``fsaverage5``.
    labels : dict of {'lh', 'rh'} to ndarray of int, shape (n_vertices,)
        Parcel index per vertex as returned by :func:`surface_atlas` (0 = none).
    surface : str
        Surface whose vertex coordinates are averaged.

    Returns
    -------
    ndarray, shape (n_parcels, 3)
        Mean vertex position of parcels 1..n_parcels, in mm. fsaverage coordinates are
        MNI305, within a few mm of MNI152 (close enough for nearest-neighbour graphs).
    """
    import nibabel as nib

    subject_dir = surface_subject_dir(templates_dir, subject)
    n_parcels = max(int(labels[h].max()) for h in ("lh", "rh"))
    sums = np.zeros((n_parcels + 1, 3))
    counts = np.zeros(n_parcels + 1)
    for hemi in ("lh", "rh"):
        coords, _ = nib.freesurfer.read_geometry(str(subject_dir / "surf" / f"{hemi}.{surface}"))
        np.add.at(sums, labels[hemi], coords)
        counts += np.bincount(labels[hemi], minlength=n_parcels + 1)
    return sums[1:] / np.maximum(counts[1:], 1)[:, None]
