"""The offline fallback templates: nilearn's fsaverage5 and a parcellation of the sphere.

For the simulator, the demo and the tests, where no templates folder exists
(:func:`samba_bids.templates.locate.find_templates_dir` with ``fallback=True``). The parcels
are NOT the Schaefer 2018 atlas, although they are written under its file names so that every
reader works unchanged; there is no MNI152NLin6Asym folder and no fsLR. Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import CantCreateError, NoInputError, UsageError
from .spaces import (
    FALLBACK_DESCRIPTION,
    FALLBACK_SURFACES,
    MEDIAL_WALL,
    schaefer_annot_name,
)

# The package's logger, as before the split into modules: log lines keep their name.
logger = logging.getLogger(__package__)

#: Parcel groups ("networks") of the fallback parcellation, the same in both hemispheres.
FALLBACK_N_GROUPS = 7


def build_fallback_templates(dest, scales=(100, 200)) -> Path:
    """Write an offline templates folder from what nilearn and MNE ship (no download).

    The folder has the ``fsaverage5`` part of the templates layout, so every reader works
    unchanged, but its parcels are **not** Schaefer 2018: they are made for simulations and
    tests. Written in a temporary sibling folder, then renamed to ``dest``::

        fsaverage5/surf/{lh,rh}.{white,pial,inflated,sphere,sphere.reg}
        fsaverage5/label/{lh,rh}.Schaefer2018_<N>Parcels_7Networks_order.annot
        README.md, samba_fallback_templates.json

    * Surfaces: nilearn's fsaverage5 meshes (:func:`nilearn.datasets.load_fsaverage`, shipped
      with nilearn; 10,242 vertices per hemisphere, mm), written with
      :func:`nibabel.freesurfer.write_geometry`. ``sphere.reg`` is the sphere, as on fsaverage.
    * Medial wall: the largest connected set of vertices absent from nilearn's flat patch
      (the cut-out medial wall, ~700-760 vertices per hemisphere; Schaefer's is ~870); if the
      flat patch is unavailable every vertex is parcellated.
    * Parcels: per hemisphere, spherical k-means of the cortical sphere vertices into N/2
      parcels (farthest-point seeds from the first cortical vertex, Lloyd iterations to
      convergence: deterministic, no random numbers); a piece of a parcel cut off by the
      medial wall joins the neighbouring parcel it touches most, so parcels are connected on
      the mesh. Index 0 is the medial wall, named
      ``Background+FreeSurfer_Defined_Medial_Wall`` as in the CBIG annotations.
    * Groups: the parcels of both hemispheres (white-surface centroids, left x mirrored) are
      clustered by k-means into :data:`FALLBACK_N_GROUPS` groups, ordered posterior to
      anterior, each present in both hemispheres; parcels are named
      ``7Networks_{LH,RH}_Sphere<g>_<k>`` and ordered by group, then posterior to anterior,
      so :func:`samba_bids.simulate.network_groups` finds the groups.
    * Head model: nothing is copied. :func:`samba_bids.ephys.forward.make_template_forward`
      reads MNE's shipped ``mne/data/fsaverage/`` files (head surface, inner-skull BEM
      surface, head<->MRI transform) in place; there is no three-layer BEM here, so EEG uses
      the sphere model fitted to the head.
    * No ``MNI152NLin6Asym`` volume atlas and no ``fsLR``.

    Parameters
    ----------
    dest : path-like
        Folder to create; it must not exist or be empty.
    scales : sequence of int
        Total parcel counts (both hemispheres) to write, each even and at least
        ``2 * FALLBACK_N_GROUPS``; the readers expect 100, 200 or 400.

    Returns
    -------
    Path
        ``dest``, resolved.

    Raises
    ------
    UsageError
        If a scale is odd or too small.
    CantCreateError
        If ``dest`` exists and is not empty, or cannot be written.
    NoInputError
        If the installed nilearn does not ship fsaverage5 (:func:`load_fsaverage` needs
        nilearn 0.11 or later).
    """
    from .. import __version__

    dest = Path(dest).expanduser()
    scales = tuple(int(s) for s in scales)
    bad = [s for s in scales if s % 2 or s < 2 * FALLBACK_N_GROUPS]
    if bad or not scales:
        raise UsageError(
            f"scales must be even parcel counts of at least {2 * FALLBACK_N_GROUPS} "
            f"(e.g. 100, 200, 400), got {scales}."
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CantCreateError(
            f"{dest} exists and is not an empty folder; remove it or choose another place for "
            "the fallback templates."
        )
    t_start = time.perf_counter()
    meshes = nilearn_fsaverage5()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    except OSError as err:
        raise CantCreateError(
            f"Cannot write the fallback templates beside {dest} ({err.strerror}); choose a "
            "writable folder."
        ) from err
    try:
        subject_dir = tmp / "fsaverage5"
        (subject_dir / "surf").mkdir(parents=True)
        (subject_dir / "label").mkdir()
        write_fsaverage5_surfaces(subject_dir / "surf", meshes, "samba-bids fallback")
        cortex = {}
        for hemi, part in (("lh", "left"), ("rh", "right")):
            faces = np.asarray(meshes["sphere"].parts[part].faces)
            n_vertices = len(meshes["sphere"].parts[part].coordinates)
            flat = meshes.get("flat")
            flat_faces = None if flat is None else np.asarray(flat.parts[part].faces)
            cortex[hemi] = ~_medial_wall(faces, flat_faces, n_vertices)
        medial_wall_found = not all(c.all() for c in cortex.values())
        if not medial_wall_found:
            logger.warning("nilearn's flat patch is unavailable: the fallback parcellation "
                           "covers every vertex (no medial wall).")
        summary = {}
        for scale in scales:
            summary[str(scale)] = _write_sphere_annotations(
                subject_dir / "label", scale, meshes, cortex)
        description = _fallback_description(scales, cortex, medial_wall_found, summary,
                                            __version__)
        (tmp / "README.md").write_text(_fallback_readme(description))
        # written last: its presence marks a complete folder
        (tmp / FALLBACK_DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
        os.replace(tmp, dest)  # atomic; replaces an empty ``dest``
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CantCreateError(
            f"Cannot write the fallback templates into {dest} ({err.strerror}); choose a "
            "writable folder."
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Fallback templates (scales %s) written to %s in %.1f s.",
                ", ".join(map(str, scales)), dest, time.perf_counter() - t_start)
    return dest.resolve()


def write_fsaverage5_surfaces(surf_dir: Path, meshes: dict, stamp: str) -> None:
    """Write nilearn's fsaverage5 meshes as FreeSurfer surfaces (:data:`FALLBACK_SURFACES`)."""
    import nibabel as nib

    for fs_name, nilearn_name in FALLBACK_SURFACES.items():
        for hemi, part in (("lh", "left"), ("rh", "right")):
            mesh = meshes[nilearn_name].parts[part]
            nib.freesurfer.write_geometry(
                str(surf_dir / f"{hemi}.{fs_name}"),
                np.asarray(mesh.coordinates, dtype=float),
                np.asarray(mesh.faces, dtype=np.int32),
                create_stamp=f"{stamp}: nilearn fsaverage5 {nilearn_name}",
            )


def nilearn_fsaverage5():
    """nilearn's shipped fsaverage5 meshes: dict of name -> PolyMesh (left/right parts)."""
    from nilearn import datasets

    if not hasattr(datasets, "load_fsaverage"):
        raise NoInputError(
            "The fallback templates need nilearn.datasets.load_fsaverage (nilearn 0.11 or "
            "later); upgrade nilearn or pass --templates-dir PATH."
        )
    bunch = datasets.load_fsaverage("fsaverage5")
    return {k: v for k, v in bunch.items() if k != "description"}


def _vertex_adjacency(faces: np.ndarray, n_vertices: int):
    from scipy import sparse

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = sparse.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices)
    ).tocsr()
    return adjacency + adjacency.T


def _medial_wall(faces: np.ndarray, flat_faces, n_vertices: int) -> np.ndarray:
    """Medial wall mask: largest connected set of vertices absent from the flat patch.

    Parameters
    ----------
    faces : ndarray of int, shape (n_faces, 3)
        Triangles of the closed surface.
    flat_faces : ndarray of int, shape (n_flat_faces, 3) | None
        Triangles of the flattened patch (the medial wall cut out; a few isolated vertices
        along the relaxation cuts are missing too). None: no medial wall.
    n_vertices : int
        Vertices of the surface.

    Returns
    -------
    ndarray of bool, shape (n_vertices,)
    """
    from scipy.sparse.csgraph import connected_components

    wall = np.zeros(n_vertices, dtype=bool)
    if flat_faces is None or len(flat_faces) == 0:
        return wall
    outside = np.ones(n_vertices, dtype=bool)
    outside[np.unique(flat_faces)] = False
    index = np.flatnonzero(outside)
    if len(index) == 0:
        return wall
    adjacency = _vertex_adjacency(faces, n_vertices)[index][:, index]
    _, component = connected_components(adjacency, directed=False)
    wall[index[component == np.bincount(component).argmax()]] = True
    return wall


# Our own k-means, not scikit-learn's KMeans: the parcels are a *spherical* k-means (cosine
# assignment, centres renormalised to the sphere every iteration), which KMeans does not
# offer. KMeans on the normalised points, even started from these seeds, moves 1 to 767
# vertices per hemisphere and scale to other parcels, and the fallback parcels must not
# change. For the Euclidean grouping of parcel centroids KMeans (these seeds, n_init=1,
# tol=0) gives the same groups, but this function is kept for the sphere anyway, and one
# deterministic numpy implementation does not depend on scikit-learn's float order or
# empty-cluster handling from version to version.
def _kmeans(points: np.ndarray, n_clusters: int, *, on_sphere: bool,
            max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means: farthest-point seeds from point 0, then Lloyd iterations.

    Parameters
    ----------
    points : ndarray, shape (n_points, 3)
        Coordinates; with ``on_sphere`` they are normalised and clustered by cosine
        similarity (spherical k-means), else by Euclidean distance.
    n_clusters : int
        Clusters, at most ``n_points``.
    max_iter : int
        Lloyd iterations at most (it stops when the assignment no longer changes).

    Returns
    -------
    assignment : ndarray of int, shape (n_points,)
        Cluster index 0..n_clusters-1 of each point; no cluster is empty.
    centres : ndarray, shape (n_clusters, 3)
    """
    x = np.asarray(points, dtype=float)
    if on_sphere:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)

    def cost(centres):  # (n_points, n_clusters), smaller is closer
        if on_sphere:
            return -(x @ centres.T)
        return ((x[:, None, :] - centres[None]) ** 2).sum(-1)

    seeds = [0]
    nearest = cost(x[[0]])[:, 0]
    for _ in range(1, n_clusters):
        seeds.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, cost(x[[seeds[-1]]])[:, 0])
    centres = x[seeds].copy()
    assignment = np.full(len(x), -1)
    for _ in range(max_iter):
        distance = cost(centres)
        new = distance.argmin(axis=1)
        counts = np.bincount(new, minlength=n_clusters)
        for empty in np.flatnonzero(counts == 0):  # reseed at the worst-fitted point
            own = distance[np.arange(len(x)), new]
            own[counts[new] < 2] = -np.inf
            worst = int(np.argmax(own))
            counts[new[worst]] -= 1
            new[worst] = empty
            counts[empty] = 1
        if np.array_equal(new, assignment):
            break
        assignment = new
        sums = np.zeros_like(centres)
        np.add.at(sums, assignment, x)
        centres = sums / np.bincount(assignment, minlength=n_clusters)[:, None]
        if on_sphere:
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return assignment, centres


def _make_contiguous(parcel: np.ndarray, adjacency) -> np.ndarray:
    """Give each parcel's detached pieces to the neighbouring parcel they touch most.

    Voronoi cells on the sphere can be cut in two by the medial wall. ``parcel``: index per
    vertex, -1 outside the cortex; ``adjacency``: sparse vertex adjacency (CSR). The largest
    connected piece of each parcel is kept, so no parcel becomes empty. Returns a copy.
    """
    from scipy.sparse.csgraph import connected_components

    parcel = parcel.copy()
    for k in range(int(parcel.max()) + 1):
        index = np.flatnonzero(parcel == k)
        n_pieces, piece = connected_components(adjacency[index][:, index], directed=False)
        if n_pieces < 2:
            continue
        main = np.bincount(piece).argmax()
        for other in range(n_pieces):
            if other == main:
                continue
            vertices = index[piece == other]
            neighbours = parcel[adjacency[vertices].indices]
            neighbours = neighbours[(neighbours >= 0) & (neighbours != k)]
            if len(neighbours):
                parcel[vertices] = np.bincount(neighbours).argmax()
    return parcel


def _parcel_groups(centroids: dict, n_groups: int) -> dict:
    """Group parcels of both hemispheres into ``n_groups`` groups present in both.

    ``centroids``: {'lh', 'rh'} -> (n_parcels_hemi, 3) white-surface centroids, mm. The left
    hemisphere is mirrored (x -> -x) and pooled with the right, clustered by k-means; a group
    missing from a hemisphere takes that hemisphere's parcel nearest its centre (from a
    group with more than one). Groups are numbered posterior to anterior (mean y).
    Returns {'lh', 'rh'} -> ndarray of int group index 0..n_groups-1.
    """
    mirrored = centroids["lh"] * np.array([-1.0, 1.0, 1.0])
    pooled = np.vstack([mirrored, centroids["rh"]])
    assignment, centres = _kmeans(pooled, n_groups, on_sphere=False)
    n_lh = len(mirrored)
    groups = {"lh": assignment[:n_lh].copy(), "rh": assignment[n_lh:].copy()}
    coords = {"lh": mirrored, "rh": centroids["rh"]}
    for hemi in ("lh", "rh"):
        g = groups[hemi]
        for missing in range(n_groups):
            if (g == missing).any():
                continue
            counts = np.bincount(g, minlength=n_groups)
            distance = ((coords[hemi] - centres[missing]) ** 2).sum(1)
            distance[counts[g] < 2] = np.inf
            g[int(np.argmin(distance))] = missing
    order = np.argsort(centres[:, 1], kind="stable")  # posterior (low y) first
    rank = np.empty(n_groups, dtype=int)
    rank[order] = np.arange(n_groups)
    return {hemi: rank[g] for hemi, g in groups.items()}


def _group_colors(n_groups: int) -> np.ndarray:
    """Distinct base colours (RGB 0-255) of the groups."""
    base = np.array([[120, 18, 134], [70, 130, 180], [0, 118, 14], [196, 58, 250],
                     [220, 180, 140], [230, 148, 34], [205, 62, 78]], dtype=float)
    return base[np.arange(n_groups) % len(base)]


def _write_sphere_annotations(label_dir: Path, scale: int, meshes: dict, cortex: dict) -> dict:
    """Write ``{lh,rh}.Schaefer2018_<scale>Parcels_7Networks_order.annot``; return a summary."""
    import nibabel as nib

    per_hemi = scale // 2
    vertex_parcel, centroids = {}, {}
    for hemi, part in (("lh", "left"), ("rh", "right")):
        sphere = np.asarray(meshes["sphere"].parts[part].coordinates, dtype=float)
        white = np.asarray(meshes["white_matter"].parts[part].coordinates, dtype=float)
        keep = np.flatnonzero(cortex[hemi])
        assignment, _ = _kmeans(sphere[keep], per_hemi, on_sphere=True)
        parcel = np.full(len(sphere), -1)
        parcel[keep] = assignment
        faces = np.asarray(meshes["sphere"].parts[part].faces)
        parcel = _make_contiguous(parcel, _vertex_adjacency(faces, len(sphere)))
        assignment = parcel[keep]
        vertex_parcel[hemi] = parcel
        sums = np.zeros((per_hemi, 3))
        np.add.at(sums, assignment, white[keep])
        centroids[hemi] = sums / np.bincount(assignment, minlength=per_hemi)[:, None]
    groups = _parcel_groups(centroids, FALLBACK_N_GROUPS)
    colors = _group_colors(FALLBACK_N_GROUPS)
    sizes = {}
    for hemi in ("lh", "rh"):
        # Schaefer order: by group, then posterior to anterior within the group
        order = np.lexsort((centroids[hemi][:, 1], groups[hemi]))
        new_index = np.empty(per_hemi, dtype=int)
        new_index[order] = np.arange(1, per_hemi + 1)
        names = [MEDIAL_WALL]
        ctab = [[1, 1, 1, 0]]  # the CBIG annotations' medial-wall colour
        used = {(1, 1, 1)}
        for g in range(FALLBACK_N_GROUPS):
            members = order[groups[hemi][order] == g]
            for k in range(len(members)):
                shade = 0.55 + 0.45 * k / max(len(members) - 1, 1)
                rgb = tuple(int(v) for v in np.rint(colors[g] * shade))
                while rgb in used:  # annotation values derive from colours: keep them unique
                    rgb = (rgb[0], rgb[1], (rgb[2] + 1) % 256)
                used.add(rgb)
                ctab.append([*rgb, 0])
                names.append(f"7Networks_{hemi.upper()}_Sphere{g + 1}_{k + 1}")
        labels = np.where(vertex_parcel[hemi] >= 0,
                          new_index[np.maximum(vertex_parcel[hemi], 0)], 0)
        nib.freesurfer.write_annot(
            str(label_dir / f"{hemi}.{schaefer_annot_name(scale)}.annot"),
            labels.astype(np.int32), np.array(ctab, dtype=np.int32), names, fill_ctab=True,
        )
        sizes[hemi] = np.bincount(vertex_parcel[hemi][vertex_parcel[hemi] >= 0]).tolist()
    all_sizes = sizes["lh"] + sizes["rh"]
    return {"ParcelsPerHemisphere": per_hemi,
            "VerticesPerParcel": {"min": int(min(all_sizes)), "median":
                                  float(np.median(all_sizes)), "max": int(max(all_sizes))}}


def _fallback_description(scales, cortex, medial_wall_found, summary, version) -> dict:
    import mne
    import nibabel as nib
    import nilearn

    return {
        "Name": "samba-bids offline fallback templates",
        "Description": "fsaverage5 surfaces and a k-means parcellation of the sphere, for "
                       "simulations and tests. NOT the Schaefer 2018 atlas, although the "
                       "annotations carry its file names so that every reader works unchanged.",
        "GeneratedBy": {"Name": "samba_bids.templates.build_fallback_templates",
                        "Version": version},
        "Sources": {
            "Surfaces": f"nilearn {nilearn.__version__} "
                        "nilearn.datasets.load_fsaverage('fsaverage5') (shipped with nilearn; "
                        "FreeSurfer fsaverage5)",
            "HeadModel": f"MNE-Python {mne.__version__} mne/data/fsaverage "
                         "(fsaverage-head.fif, fsaverage-inner_skull-bem.fif, "
                         "fsaverage-trans.fif), read in place by "
                         "samba_bids.ephys.forward; EEG uses a sphere model fitted to the "
                         "head (no three-layer BEM here)",
            "Writer": f"nibabel {nib.__version__} (write_geometry, write_annot)",
        },
        "Surfaces": sorted(FALLBACK_SURFACES),
        "Scales": list(scales),
        "Parcellation": "per hemisphere, spherical k-means of the sphere vertex coordinates "
                        "(farthest-point seeds from the first cortical vertex, Lloyd "
                        "iterations to convergence; deterministic; pieces cut off by the "
                        "medial wall join their neighbouring parcel); parcels grouped into "
                        f"{FALLBACK_N_GROUPS} groups Sphere1..Sphere{FALLBACK_N_GROUPS} "
                        "(posterior to anterior) by k-means of white-surface centroids with "
                        "the left hemisphere mirrored, each group in both hemispheres",
        "ParcelNames": "7Networks_{LH,RH}_Sphere<group>_<k>; index 0: "
                       f"{MEDIAL_WALL}",
        "MedialWall": ("largest connected set of vertices absent from nilearn's fsaverage5 "
                       "flat patch" if medial_wall_found else
                       "none identified: every vertex is parcellated"),
        "MedialWallVertices": {h: int((~c).sum()) for h, c in cortex.items()},
        "ParcelSizes": summary,
        "VolumeSpaces": [],
        "Note": "No MNI152NLin6Asym atlas and no fsLR files: the simulator writes only the "
                "fsaverage5 space with these templates.",
    }


def _fallback_readme(description: dict) -> str:
    return (
        "# samba-bids offline fallback templates\n\n"
        "Written by `samba_bids.templates.build_fallback_templates` because no templates "
        "folder was found. **The parcels are not the Schaefer 2018 atlas**: they are a "
        "k-means parcellation of the fsaverage5 sphere, written under the Schaefer file names "
        "(`fsaverage5/label/{lh,rh}.Schaefer2018_<N>Parcels_7Networks_order.annot`, parcels "
        "`7Networks_{LH,RH}_Sphere<g>_<k>`) so that the readers work unchanged. Use them for "
        "simulations and tests only; pass `--templates-dir` with the real atlases for an "
        "analysis.\n\n"
        f"- Surfaces: {description['Sources']['Surfaces']}\n"
        f"- Head model: {description['Sources']['HeadModel']}\n"
        f"- Parcellation: {description['Parcellation']}\n"
        f"- Medial wall: {description['MedialWall']}\n"
        f"- Scales: {', '.join(map(str, description['Scales']))}\n"
        "- No MNI152NLin6Asym volume atlas, no fsLR files.\n"
    )
