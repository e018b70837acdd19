"""Templates and atlases: where they are, how to read them, how to get them.

Modules, lightest first (each imports only those above it, and none imports the BOLD or
electrophysiology stages):

* :mod:`~samba_bids.templates.spaces`: names of the spaces and of the atlas files (imports
  nothing);
* :mod:`~samba_bids.templates.locate`: the templates folder (``--templates-dir``,
  ``$SAMBA_TEMPLATES``, the user cache, the offline fallback), template subjects, the
  three-layer fsaverage BEM;
* :mod:`~samba_bids.templates.atlases`: the Schaefer 2018 readers (surface, volume, CIFTI)
  and parcel centroids;
* :mod:`~samba_bids.templates.fallback`: the offline fallback folder (nilearn's fsaverage5
  and a k-means parcellation of the sphere; not the Schaefer atlas);
* :mod:`~samba_bids.templates.fetch`: ``samba-bids-fetch-templates``.

The names of the former single module ``samba_bids.templates`` are still importable from
here (``from samba_bids.templates import find_templates_dir``), but lazily: this file imports
no submodule, and the module-level ``__getattr__`` (PEP 562, as in MNE's ``lazy_loader``)
imports the one that holds a name on first use. So ``import samba_bids.templates.spaces``
loads ``spaces`` alone, not numpy, nibabel, MNE or the fetch code. Code inside the package
imports from the submodule itself (``from ..templates.spaces import SURFACE_SPACES``), which
also keeps the import graph explicit; tests that replace a function with ``monkeypatch``
must patch the submodule where the function is looked up, not this package.
"""

from __future__ import annotations

import importlib

#: Public names of the former ``samba_bids.templates`` module, by the submodule now holding them.
_EXPORTS = {
    "spaces": ("CIFTI_SPACES", "FALLBACK_DESCRIPTION", "FALLBACK_SURFACES", "FSLR_MIDTHICKNESS",
               "SURFACE_SPACES", "VOLUME_SPACES", "schaefer_annot_name"),
    "locate": ("fallback_templates_path", "find_templates_dir", "is_fallback_templates",
               "surface_subject_dir"),
    "atlases": ("cifti_atlas", "cifti_parcel_centroids", "read_cifti_labels", "surface_atlas",
                "surface_parcel_centroids", "volume_atlas"),
    "fallback": ("FALLBACK_N_GROUPS", "build_fallback_templates"),
    "fetch": ("DEFAULT_FETCH_SPACES", "FETCH_GENERATOR", "FETCH_SPACES", "MNE_FSAVERAGE_BEM_MD5",
              "MNE_FSAVERAGE_BEM_URL", "SCHAEFER_SCALES", "download", "fetch_sources",
              "fetch_templates"),
}
#: name -> (submodule, attribute). Two private names of the former module stay reachable
#: because tests/test_templates_fallback.py reads them on the package.
_WHERE = {name: (module, name) for module, names in _EXPORTS.items() for name in names}
_WHERE.update({"_MEDIAL_WALL": ("spaces", "MEDIAL_WALL"),
               "_vertex_adjacency": ("fallback", "_vertex_adjacency")})

__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str):
    if name in _EXPORTS:  # a submodule not imported yet
        return importlib.import_module(f"{__name__}.{name}")
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_EXPORTS))
