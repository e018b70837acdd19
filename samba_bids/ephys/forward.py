"""Template head models: source space, labels, and the EEG/MEG forward model on the template.

Head models on the template (fsaverage5 shares fsaverage's coordinates):

* MEG: single-layer inner-skull BEM from the surface MNE ships
  (``mne/data/fsaverage/fsaverage-inner_skull-bem.fif``), conductivity 0.3 S/m.
* EEG: a three-layer BEM solution when the templates folder has one
  (``<subject>/bem/*-bem-sol.fif`` or ``fsaverage/bem/*-bem-sol.fif``), else a four-shell
  sphere model fitted to the template head.

The inverse operator and the parcel kernel built on this forward model are in
:mod:`samba_bids.ephys.source`.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path

import mne
import numpy as np
from mne.transforms import Transform, apply_trans, invert_transform
from threadpoolctl import threadpool_limits

from ..config import CHOICES, check_option
from ..errors import DataError, NoInputError
from ..templates.atlases import surface_atlas
from ..templates.locate import find_three_layer_bem as _find_three_layer_bem
from ..templates.locate import surface_subject_dir
from ..templates.spaces import schaefer_annot_name

logger = logging.getLogger(__name__)

#: Inverse methods of :func:`mne.minimum_norm.apply_inverse_raw` (the one list: the config's).
INVERSE_METHODS = CHOICES["inverse_method"]

#: MNE's shipped fsaverage files (surfaces in fsaverage MRI coordinates, also fsaverage5's).
MNE_FSAVERAGE_DIR = Path(mne.__file__).parent / "data" / "fsaverage"
FSAVERAGE_TRANS = MNE_FSAVERAGE_DIR / "fsaverage-trans.fif"
FSAVERAGE_INNER_SKULL = MNE_FSAVERAGE_DIR / "fsaverage-inner_skull-bem.fif"
FSAVERAGE_HEAD = MNE_FSAVERAGE_DIR / "fsaverage-head.fif"

#: Brain conductivity of the single-layer MEG BEM, S/m.
INNER_SKULL_CONDUCTIVITY = 0.3
#: Subdivision of the inner-skull surface used for the MEG BEM. The shipped surface is an
#: ico-5 subdivision (10,242 vertices): its BEM solution takes ~140 s and 3.4 GB and the forward
#: ~90 s; ico-4 (2,562 vertices, the grade of MNE's own fsaverage BEM) takes ~6 s and ~25 s.
INNER_SKULL_ICO = 4
#: Shell radii of the EEG sphere model relative to the scalp (brain, CSF, skull, scalp).
SPHERE_RELATIVE_RADII = (0.90, 0.92, 0.97, 1.0)
#: Minimum distance of every source from the innermost sphere shell, m.
SPHERE_SOURCE_MARGIN_M = 0.002

LOOSE = 0.2
DEPTH = 0.8
LABEL_MODE = "mean_flip"


def _check_method(method: str) -> str:
    return check_option("inverse method (--inverse-method)", method, INVERSE_METHODS)


def _check_modality(modality: str) -> str:
    return check_option("modality", modality, ("eeg", "meg"))


# --------------------------------------------------------------------------------------------
# Labels


def template_labels(templates_dir, subject: str, n_parcels: int) -> list[mne.Label]:
    """Schaefer 2018 (7 networks) labels on a template surface, in atlas order.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder (a FreeSurfer ``SUBJECTS_DIR``) holding
        ``<subject>/label/{lh,rh}.Schaefer2018_<N>Parcels_7Networks_order.annot``.
    subject : str
        Template subject, e.g. ``'fsaverage5'``.
    n_parcels : int
        100, 200 or 400.

    Returns
    -------
    list of mne.Label, length n_parcels
        Left hemisphere then right, in Schaefer order: the order of the names returned by
        :func:`samba_bids.templates.surface_atlas`. The medial wall is dropped.

    Raises
    ------
    NoInputError
        If the annotation files are missing.
    DataError
        If the annotation's labels do not match the atlas names.

    Notes
    -----
    Follows :func:`mne.read_labels_from_annot`.
    """
    subject_dir = surface_subject_dir(templates_dir, subject)
    vertex_parcels, names = surface_atlas(templates_dir, subject, n_parcels)
    labels = mne.read_labels_from_annot(
        subject,
        parc=schaefer_annot_name(n_parcels),
        subjects_dir=str(Path(templates_dir)),
        verbose=False,
    )
    by_name = {label.name: label for label in labels}
    n_lh = int(vertex_parcels["lh"].max())
    ordered = []
    for index, name in enumerate(names, start=1):
        hemi = "lh" if index <= n_lh else "rh"
        key = f"{name}-{hemi}"
        if key not in by_name:
            raise DataError(
                f"{subject_dir / 'label'}: label {key} of {schaefer_annot_name(n_parcels)} "
                "not found by MNE; replace the annotation files with the CBIG originals."
            )
        ordered.append(by_name[key])
    return ordered


# --------------------------------------------------------------------------------------------
# Cached template pieces (pure functions of their keys; copies are handed out)


@functools.lru_cache(maxsize=4)
def _cached_source_space(templates_dir: str, subject: str) -> mne.SourceSpaces:
    return mne.setup_source_space(
        subject, spacing="all", subjects_dir=templates_dir, add_dist=False, verbose=False
    )


def _source_space(templates_dir, subject: str) -> mne.SourceSpaces:
    surface_subject_dir(templates_dir, subject)  # NoInputError with the fix when absent
    for hemi in ("lh", "rh"):
        white = Path(templates_dir) / subject / "surf" / f"{hemi}.white"
        if not white.is_file():
            raise NoInputError(
                f"{white} is missing; fetch the {subject} template (surf/) into --templates-dir."
            )
    return _cached_source_space(str(Path(templates_dir).resolve()), subject).copy()


@functools.lru_cache(maxsize=1)
def _inner_skull_bem_solution() -> mne.bem.ConductorModel:
    """Single-layer BEM solution of MNE's fsaverage inner skull, downsampled to ico-4."""
    surf = mne.read_bem_surfaces(FSAVERAGE_INNER_SKULL, verbose=False)[0]
    with tempfile.TemporaryDirectory(prefix="samba-bem-") as tmp:
        # make_bem_model reads <subjects_dir>/<subject>/bem/inner_skull.surf and performs the
        # ico downsampling (checking that the surface is an icosahedron subdivision).
        bem_dir = Path(tmp) / "fsaverage" / "bem"
        bem_dir.mkdir(parents=True)
        mne.write_surface(bem_dir / "inner_skull.surf", surf["rr"] * 1000.0, surf["tris"])
        model = mne.make_bem_model(
            "fsaverage",
            ico=INNER_SKULL_ICO,
            conductivity=(INNER_SKULL_CONDUCTIVITY,),
            subjects_dir=tmp,
            verbose=False,
        )
    return mne.make_bem_solution(model, verbose=False)


@functools.lru_cache(maxsize=1)
def _read_bem_solution(fname: str) -> mne.bem.ConductorModel:
    return mne.read_bem_solution(fname, verbose=False)


def _fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points (m): centre, radius."""
    design = np.column_stack([2.0 * points, np.ones(len(points))])
    sol = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


@functools.lru_cache(maxsize=4)
def _template_sphere(templates_dir: str, subject: str) -> tuple[np.ndarray, float, float]:
    """Sphere fitted to the template scalp, enlarged to enclose every cortical source.

    Returns centre (MRI coordinates, m), scalp radius (m) and the fitted radius (m).
    """
    head = mne.read_bem_surfaces(FSAVERAGE_HEAD, verbose=False)[0]["rr"]
    mri_head = invert_transform(mne.read_trans(FSAVERAGE_TRANS, verbose=False))
    above = apply_trans(mri_head, head)[:, 2] > 0  # above the fiducial plane (no face, neck)
    centre, fitted = _fit_sphere(head[above])
    src = _cached_source_space(templates_dir, subject)
    rr = np.concatenate([s["rr"][s["vertno"]] for s in src])
    reach = np.linalg.norm(rr - centre, axis=1).max() + SPHERE_SOURCE_MARGIN_M
    radius = max(fitted, reach / SPHERE_RELATIVE_RADII[0])
    return centre, radius, fitted


def _eeg_info_in_mri(info: mne.Info, head_mri: Transform) -> mne.Info:
    """Copy of ``info`` with electrode positions moved into fsaverage MRI coordinates."""
    info = info.copy()
    for ch in info["chs"]:
        if ch["kind"] != mne.io.constants.FIFF.FIFFV_EEG_CH:
            continue
        loc = ch["loc"]
        loc[:3] = apply_trans(head_mri, loc[:3])
        if np.any(loc[3:6]):
            loc[3:6] = apply_trans(head_mri, loc[3:6])
    return info


# --------------------------------------------------------------------------------------------
# Forward and inverse


def make_template_forward(
    info: mne.Info,
    templates_dir,
    *,
    subject: str = "fsaverage5",
    modality: str,
    n_jobs: int = 1,
) -> tuple[mne.Forward, dict]:
    """Forward model of a recording on a template brain (cortical surface, all vertices).

    Parameters
    ----------
    info : mne.Info
        Measurement info of the preprocessed recording (only the modality's channels); EEG
        electrode positions in the head frame (from the BIDS ``electrodes.tsv``).
    templates_dir : path-like
        Templates folder (FreeSurfer ``SUBJECTS_DIR``) holding ``<subject>/surf/{lh,rh}.white``.
    subject : str
        Template subject; ``fsaverage5`` (10,242 vertices per hemisphere) shares fsaverage's
        coordinates, which MNE's shipped transform and BEM surfaces use.
    modality : {'eeg', 'meg'}
        Which sensors to model.
    n_jobs : int
        Parallel jobs for :func:`mne.make_forward_solution`.

    Returns
    -------
    forward : mne.Forward
        Gain matrix, shape (n_channels, 3 x n_sources), in surface orientation
        (``surf_ori=True``: normal component third), V/Am (EEG) or T/Am, T/m/Am (MEG).
    provenance : dict
        ``SourceSpace``, ``HeadModel``, ``Transform``, ``NSources`` (and ``BEM`` details) for
        sidecars and the methods boilerplate; JSON-serialisable.

    Raises
    ------
    NoInputError
        If the template's surfaces are missing.
    UsageError
        If ``modality`` is not ``'eeg'`` or ``'meg'``.

    Notes
    -----
    Follows :func:`mne.setup_source_space` (``spacing='all'``, ``add_dist=False``),
    :func:`mne.make_bem_model` / :func:`mne.make_bem_solution` (MEG: MNE's fsaverage inner
    skull, 0.3 S/m, at ico-4), :func:`mne.read_bem_solution` (EEG, three layers),
    :func:`mne.make_sphere_model`, :func:`mne.make_forward_solution` and
    :func:`mne.convert_forward_solution` (``surf_ori=True``). The head<->MRI transform is
    MNE's ``fsaverage-trans.fif``.

    The EEG sphere model is fitted to the fsaverage scalp above the fiducial plane (electrode
    positions alone cover only the top of the head and place the centre ~5 cm too high, leaving
    a quarter of the cortex outside the brain shell) and enlarged, if needed, so every source
    lies at least 2 mm inside the brain shell. It is computed with the electrodes moved into
    MRI coordinates and an identity transform, because MNE (1.13) tests the sources against a
    sphere in MRI rather than head coordinates.
    """
    _check_modality(modality)
    src = _source_space(templates_dir, subject)
    n_vertices = sum(int(s["nuse"]) for s in src)
    trans = mne.read_trans(FSAVERAGE_TRANS, verbose=False)
    provenance = {
        "SourceSpace": f"{subject}, all {n_vertices} vertices",
        "Transform": "fsaverage head<->MRI transform shipped with MNE-Python "
        "(mne/data/fsaverage/fsaverage-trans.fif)",
    }
    fwd_info, fwd_trans = info, trans
    if modality == "meg":
        bem = _inner_skull_bem_solution()
        provenance["HeadModel"] = "single-layer inner-skull BEM (MNE fsaverage)"
        provenance["BEM"] = (
            f"fsaverage inner skull (MNE), ico-{INNER_SKULL_ICO} "
            f"({len(bem['surfs'][0]['rr'])} vertices), {INNER_SKULL_CONDUCTIVITY} S/m"
        )
    else:
        bem_file = _find_three_layer_bem(templates_dir, subject)
        if bem_file is not None:
            bem = _read_bem_solution(str(bem_file))
            provenance["HeadModel"] = "three-layer BEM"
            provenance["BEM"] = str(bem_file.name)
        else:
            centre, radius, fitted = _template_sphere(str(Path(templates_dir).resolve()), subject)
            bem = mne.make_sphere_model(
                r0=centre,
                head_radius=radius,
                info=None,
                relative_radii=SPHERE_RELATIVE_RADII,
                verbose=False,
            )
            fwd_info = _eeg_info_in_mri(info, trans)
            fwd_trans = Transform("head", "mri")  # identity: everything is in MRI coordinates
            r0_mm = ", ".join(f"{v:.1f}" for v in centre * 1000)
            provenance["HeadModel"] = (
                f"sphere model fitted to the head (r0 = ({r0_mm}) mm in fsaverage MRI "
                f"coordinates, radius {radius * 1000:.1f} mm; fitted to the fsaverage scalp "
                f"above the fiducial plane ({fitted * 1000:.1f} mm), shells at "
                f"{'/'.join(f'{r:g}' for r in SPHERE_RELATIVE_RADII)} of the radius, enlarged "
                "so every source lies inside the brain shell)"
            )
            logger.info("No three-layer BEM in %s; EEG uses a sphere model.", templates_dir)
    # MNE's inside-the-skull check (scipy Delaunay.find_simplex) makes one tiny LAPACK call
    # per simplex: with threaded OpenBLAS on busy cores the MEG forward took 64-117 s instead
    # of about 25 s. One BLAS thread for this call only.
    with threadpool_limits(limits=1, user_api="blas"):
        fwd = mne.make_forward_solution(
            fwd_info,
            fwd_trans,
            src,
            bem,
            meg=modality == "meg",
            eeg=modality == "eeg",
            n_jobs=n_jobs,
            verbose=False,
        )
    fwd = mne.convert_forward_solution(fwd, surf_ori=True, verbose=False)
    provenance["NSources"] = int(fwd["nsource"])
    if fwd["nsource"] < n_vertices:
        logger.warning(
            "%d of %d template sources lie outside the head model and were dropped.",
            n_vertices - fwd["nsource"],
            n_vertices,
        )
    logger.info(
        "Forward: %d %s channels x %d sources (%s)",
        fwd["nchan"],
        modality.upper(),
        fwd["nsource"],
        provenance["HeadModel"],
    )
    return fwd, provenance
