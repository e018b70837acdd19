"""Names of the template spaces and of the atlas files in a templates folder.

Pure constants and file-name helpers: this module imports nothing (not even numpy), so that
``samba_bids.bids`` and the command-line parsers can list the spaces without loading the atlas
readers, nibabel or the BOLD and electrophysiology stages.

Layout of a templates folder (``--templates-dir``; the same as ``../shared/data/templates``)::

    fsaverage5/ (and/or fsaverage/)   FreeSurfer subject: surf/, label/{lh,rh}.Schaefer2018_*.annot
    MNI152NLin6Asym/                  tpl-MNI152NLin6Asym_res-02_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.nii.gz + .tsv
    fsLR/                             tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.dlabel.nii + .tsv
                                      (optional: tpl-fsLR_den-32k_hemi-{L,R}_midthickness.surf.gii)
"""

from __future__ import annotations

#: Surface spaces read from a FreeSurfer subject folder of the same name.
SURFACE_SPACES = ("fsaverage5", "fsaverage6", "fsaverage")
VOLUME_SPACES = ("MNI152NLin6Asym",)
#: Grayordinate (CIFTI) spaces: fsLR 91k (32k vertices per hemisphere + 2 mm subcortex).
CIFTI_SPACES = ("fsLR",)
#: fsLR 32k midthickness meshes (TemplateFlow names) in ``fsLR/``, used for parcel centroids
#: when present; ``{hemi}`` is ``L`` or ``R``.
FSLR_MIDTHICKNESS = "tpl-fsLR_den-32k_hemi-{hemi}_midthickness.surf.gii"
#: Name of label 0 (the medial wall) in the CBIG Schaefer 2018 annotations.
MEDIAL_WALL = "Background+FreeSurfer_Defined_Medial_Wall"

#: File at the root of a fallback templates folder that describes it (written last).
FALLBACK_DESCRIPTION = "samba_fallback_templates.json"
#: Surfaces of the fallback fsaverage5 subject: FreeSurfer name -> nilearn mesh name.
FALLBACK_SURFACES = {"white": "white_matter", "pial": "pial", "inflated": "inflated",
                     "sphere": "sphere", "sphere.reg": "sphere"}


def schaefer_annot_name(n_parcels: int) -> str:
    """FreeSurfer annotation name of Schaefer 2018, 7 networks, ``n_parcels`` parcels."""
    return f"Schaefer2018_{n_parcels}Parcels_7Networks_order"


def volume_atlas_name(n_parcels, space="MNI152NLin6Asym", res="02") -> str:
    """File name of the Schaefer 2018 label image of a volume space (TemplateFlow name)."""
    return f"tpl-{space}_res-{res}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.nii.gz"


def volume_table_name(n_parcels, space="MNI152NLin6Asym") -> str:
    """File name of the label table (``index``, ``name``) of a volume space's atlas."""
    return f"tpl-{space}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.tsv"


def cifti_dlabel_name(n_parcels: int) -> str:
    """File name of the fsLR 91k Schaefer 2018 dense label file."""
    return f"tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.dlabel.nii"


def fslr_table_name(n_parcels) -> str:
    """File name of the label table beside the fsLR dlabel."""
    return f"tpl-fsLR_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.tsv"
