"""Writing the participant level's derivatives: predicted BOLD, tables, maps, the model.

Every file is a row of :data:`samba_bids.bids.outputs.OUTPUTS` (its desc, suffix, extensions
and the entities its name carries), written with its JSON sidecar by
:func:`~samba_bids.bids.derivatives.write_output`; this module adds what only the pipeline
knows: the data, and the sidecars' descriptions and parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.derivatives import bids_uri, write_output
from ..templates.spaces import CIFTI_SPACES, SURFACE_SPACES

#: Atlas entities of parcel-wise outputs (Schaefer 2018, 7 networks).
ATLAS = "Schaefer2018"

SEG = "7n"

#: Phase-randomised surrogates per parcel for the metrics' p-values.
N_NULL = 1000

#: Per-parcel maps written by the participant level: desc -> (value column, description).
MAP_DESCS = {"testr": ("pearson_r", "test-block Pearson r of SAMBA's prediction"),
             "hrfttp": ("time_to_peak_s", "learned HRF time to peak, s")}

_ELEMENTS = {"surface": "vertices", "volume": "voxels", "cifti": "grayordinates"}


def source_uri(links, path):
    """BIDS URI of ``path`` in whichever linked dataset holds it."""
    path = Path(path).resolve()
    # most specific dataset first (derivatives live inside the raw dataset)
    for name, root in sorted(links.items(), key=lambda kv: -len(str(Path(kv[1]).resolve()))):
        root = Path(root).resolve()
        if root in path.parents:
            return bids_uri(name, root, path)
    return path.as_uri()


def run_common(pair, inputs, config, links) -> dict:
    """The sidecar entries every file of a paired run gets."""
    from .inputs import EPHYS_SUBJECT

    return {
        "Sources": [source_uri(links, f) for f in [pair.ephys_file, *pair.bold_files]],
        "RepetitionTime": inputs.tr_s,
        "Alignment": inputs.clock,
        "ElectrophysiologyModality": inputs.modality.upper(),
        **mr_artifacts_entry(inputs),
        "Space": pair.space,
        "SourceReconstruction": inputs.parcels.provenance,
        "Atlas": {"BOLD": f"Schaefer 2018, 7 networks, {config.bold_atlas_scale} parcels",
                  "Electrophysiology": f"Schaefer 2018, 7 networks, "
                                       f"{config.ephys_atlas_scale} parcels on {EPHYS_SUBJECT}"},
    }


def mr_artifacts_entry(inputs) -> dict:
    """``{"MRArtifacts": ...}``: the MR artefacts removed from an EEG recording, how, and
    the residual gradient power (dB); empty for MEG."""
    removal = getattr(inputs, "mr_artifacts", None)
    return {} if removal is None else {"MRArtifacts": removal.to_sidecar()}


def metric_column_docs(fdr_over: str) -> dict:
    """Sidecar entries of the metric columns that :func:`~.metrics.parcel_metrics` writes."""
    return {
        "pearson_r": {"Description": "Pearson correlation over test volumes"},
        "spearman_rho": {"Description": "Spearman rank correlation over test volumes"},
        "p_value": {"Description": f"Two-sided p of pearson_r against {N_NULL} "
                                   "phase-randomised surrogates of the prediction"},
        "p_fdr": {"Description": f"p_value after Benjamini-Hochberg FDR over {fdr_over}"},
        "significant": {"Description": "p_fdr < 0.05"},
    }


def write_model(out, entities, desc, fit, config, sources, split, provenance, *,
                extra=None) -> list:
    """The trained model (``.pt`` + JSON with the resolved config) and its loss history.

    ``desc`` is ``"samba"`` (the forward direction) or ``"sambareverse"``; ``split`` a
    :class:`~samba_bids.alignment.Split` or the dict of its sidecar entries; ``extra``
    further sidecar entries (:func:`~.translate.model_sidecar`).
    """
    prefix = "" if desc == "samba" else "reverse_"
    split = split if isinstance(split, dict) else split.to_sidecar()
    return [
        write_output(out, f"{prefix}model", entities, fit.model, writer=save_model,
                     sources=sources, parameters={
                         "Config": config.to_dict(), "ConfigDigest": config.digest(),
                         "Device": fit.device, "TrainableParameters": fit.n_parameters,
                         "BestEpoch": fit.best_epoch, "Split": split,
                         "SourceReconstruction": provenance, **(extra or {})}),
        write_output(out, f"{prefix}history", entities, fit.history, sources=sources,
                     parameters={"Description": "Training and validation loss per epoch "
                                                "(1 - Pearson r + MSE term)."}),
    ]


def save_model(path, model):
    """Write ``model.to_checkpoint()`` with :func:`torch.save`, atomically."""
    import torch

    from ..bids.derivatives import atomic_path

    with atomic_path(path) as tmp:
        torch.save(model.to_checkpoint(), tmp)
    return path


_HRF_DOCS = {
    "response_delay_s": ("Delay of the response gamma (SPM p1)", "s"),
    "undershoot_delay_s": ("Delay of the undershoot gamma (SPM p2)", "s"),
    "response_dispersion_s": ("Dispersion of the response gamma (SPM p3)", "s"),
    "undershoot_dispersion_s": ("Dispersion of the undershoot gamma (SPM p4)", "s"),
    "response_undershoot_ratio": ("Ratio of response to undershoot (SPM p5)", None),
    "onset_s": ("Onset shift (SPM p6)", "s"),
    "time_to_peak_s": ("Time from neural event to the HRF's maximum", "s"),
}


def hrf_column_doc(column):
    """The sidecar entry of an HRF table column: description and units."""
    description, unit = _HRF_DOCS.get(column, (column.replace("_", " "), None))
    doc = {"Description": description}
    if unit:
        doc["Units"] = unit
    return doc


def write_maps(out, entities, atlas, pair, metrics, hrf, common, atlas_entities, *,
               descs=tuple(MAP_DESCS)) -> list:
    """Test Pearson r and HRF time to peak per parcel as maps in the input's space.

    ``desc-testr`` / ``desc-hrfttp`` ``_boldmap``: ``.pscalar.nii`` (fsLR CIFTI input),
    ``.func.gii`` per hemisphere (fsaverage input), ``.nii.gz`` (MNI input); each parcel's
    value over its grayordinates, vertices or voxels (:func:`~.bold.parcel_map_images`).
    ``descs`` chooses among them (``metrics`` or ``hrf`` may be None when not chosen).
    """
    from ..bold import parcel_map_images

    columns = {}
    if metrics is not None:
        columns["pearson_r"] = metrics.set_index("parcel")["pearson_r"]
    if hrf is not None:
        columns["time_to_peak_s"] = hrf.set_index("parcel")["time_to_peak_s"]
    reference = pair.bold_files if pair.space in SURFACE_SPACES else pair.bold_files[0]
    written = []
    for desc, (column, what) in MAP_DESCS.items():
        if desc not in descs:
            continue
        values = columns[column].reindex(atlas.names).to_numpy(dtype=np.float32)
        images = parcel_map_images({desc: values}, atlas, reference)
        sidecar = {"Space": pair.space,
                   "Description": f"Per-parcel {what}, repeated over each parcel's "
                                  f"{_ELEMENTS.get(atlas.kind, 'elements')} (0 outside "
                                  "every parcel)."}
        if atlas.kind == "surface":
            for hemi, img in zip(("L", "R"), images):
                written.append(write_output(out, f"{desc}_map", entities, img,
                                            extension=".func.gii", hemi=hemi,
                                            sources=common["Sources"], parameters=sidecar))
        elif atlas.kind == "cifti":  # parcel-level file: named like the .ptseries.nii
            written.append(write_output(out, f"{desc}_map", entities, images[0],
                                        extension=".pscalar.nii", density=None,
                                        sources=common["Sources"], parameters=sidecar,
                                        **atlas_entities))
        else:
            written.append(write_output(out, f"{desc}_map", entities, images[0],
                                        extension=".nii.gz", sources=common["Sources"],
                                        parameters=sidecar))
    return written


#: Units of the forward direction's BOLD outputs.
Z_UNITS = ("z: observed parcel BOLD after confound regression and detrending, standardised "
           "with the training block's mean and SD")


def write_predicted_bold(out, pair, atlas, predicted, tr_s, common, atlas_entities, *,
                         reference=None) -> list:
    """Predicted parcel BOLD projected onto the input run's grid, in its format.

    fsLR CIFTI input: ``.dtseries.nii`` (each parcel's value repeated over its grayordinates)
    and the honest ``.ptseries.nii``; fsaverage: one ``.func.gii`` per hemisphere; MNI:
    ``.nii.gz`` (:func:`~samba_bids.bold.project_parcels`).

    Parameters
    ----------
    predicted : ndarray, shape (M, V)
        Predicted BOLD per parcel and volume (z units).
    reference : optional
        The grid to write on (:func:`~samba_bids.bold.project_parcels`); default the pair's
        BOLD files (:func:`template_grid` for a participant without BOLD; None with no BOLD
        files: the CIFTI atlas's grayordinates).
    """
    from ..bold import parcel_series_cifti, project_parcels

    entities = dict(pair.bold_entities)
    if reference is None and pair.bold_files:  # the run's dtseries or NIfTI (header, grid)
        reference = pair.bold_files if pair.space in SURFACE_SPACES else pair.bold_files[0]
    images = project_parcels(predicted.astype(np.float32), atlas, reference, tr_s=tr_s)
    sources, sidecar = common["Sources"], {**common, "Units": Z_UNITS}
    if pair.space in CIFTI_SPACES:
        parcels = parcel_series_cifti(predicted.astype(np.float32), atlas, tr_s)
        return [
            write_output(out, "bold", entities, images[0], extension=".dtseries.nii",
                         sources=sources, parameters={
                **sidecar,
                "Description": "SAMBA-predicted BOLD as a dense time series; each parcel's "
                               "predicted value is REPEATED over all of its grayordinates (0 "
                               "outside every parcel, including the subcortical "
                               "grayordinates), so this file has no more spatial detail than "
                               "the parcel-level .ptseries.nii beside it."}),
            write_output(out, "bold", entities, parcels, extension=".ptseries.nii",
                         density=None, sources=sources, **atlas_entities, parameters={
                **sidecar,
                "Description": "SAMBA-predicted BOLD, one row per parcel (CIFTI parcellated "
                               "time series; parcels from the fsLR 91k dlabel)."}),
        ]
    if pair.space in SURFACE_SPACES:
        return [write_output(out, "bold", entities, img, extension=".func.gii", hemi=hemi,
                             sources=sources, parameters={
                **sidecar,
                "Description": "SAMBA-predicted BOLD; each parcel's predicted value is repeated "
                               "over its vertices (medial wall 0)."})
                for hemi, img in zip(("L", "R"), images)]
    return [write_output(out, "bold", entities, images[0], extension=".nii.gz", sources=sources,
                         parameters={
        **sidecar,
        "Description": "SAMBA-predicted BOLD; each parcel's predicted value is repeated over "
                       "its voxels (background 0)."})]


def template_grid(atlas):
    """A grid to write predicted BOLD on without any BOLD run: the atlas's own.

    Surface atlases: an empty GIFTI pair naming the hemispheres; volume atlases: the atlas
    image's grid; CIFTI: None (the atlas's grayordinates).
    """
    from nibabel.gifti import GiftiImage, GiftiMetaData

    if atlas.kind == "surface":
        return [GiftiImage(meta=GiftiMetaData({"AnatomicalStructurePrimary": structure}))
                for structure in ("CortexLeft", "CortexRight")]
    if atlas.kind == "volume":
        return atlas.volume_labels
    return None


def write_parcel_series(out, entities, names, common, atlas_entities, *, samba,
                        observed) -> list:
    """``desc-samba`` and ``desc-observed`` ``_timeseries.tsv``: one column per parcel.

    Parameters
    ----------
    samba, observed : ndarray, shape (M, V)
        Predicted and observed parcel BOLD (z units); ``observed`` None for a run without
        BOLD.
    """
    written = []
    for key, values, what in (("timeseries", samba, "SAMBA-predicted"),
                              ("observed_timeseries", observed, "Observed")):
        if values is None:
            continue
        frame = pd.DataFrame(values.T, columns=names)
        written.append(write_output(out, key, entities, frame, sources=common["Sources"],
                                    **atlas_entities, parameters={
            **common, "Units": Z_UNITS,
            "Description": f"{what} parcel BOLD, one column per parcel, one row per volume.",
        }))
    return written


def write_parcel_series_predicted(out, entities, names, common, atlas_entities,
                                  predicted) -> list:
    """``desc-samba_timeseries.tsv`` of a run without BOLD (:func:`write_parcel_series`)."""
    return write_parcel_series(out, entities, names, common, atlas_entities, samba=predicted,
                               observed=None)


def write_hrf_table(out, entities, hrf, sources, atlas_entities) -> list:
    """``desc-samba_hrf.tsv``: the learned HRF parameters per BOLD parcel, documented."""
    return [write_output(out, "hrf", entities, hrf, sources=sources, **atlas_entities,
                         parameters={
        "Description": "Learned double-gamma HRF per BOLD parcel (SPM parametrisation, "
                       "initialised at the SPM canonical HRF).",
        **{col: hrf_column_doc(col) for col in hrf.columns if col != "parcel"},
    })]


#: Units of the reverse direction's band power.
BAND_POWER_UNITS = ("natural log of the mean squared wavelet coefficient of the band over the "
                    "volume's segment of source-parcel activity (dSPM units squared)")


def band_docs(config) -> dict:
    """Band name -> its sidecar description (wavelet and approximate frequency range)."""
    from ..model.wavelet import band_names, band_ranges_hz

    bands = band_names(config.wavelet_level)
    return {band: f"{config.wavelet} wavelet band {band}, about {lo:g}-{hi:g} Hz"
            for band, (lo, hi) in zip(bands, band_ranges_hz(config.wavelet_level,
                                                          config.resample_sfreq_hz))}


def write_band_power(out, key, entities, values, columns, common, atlas_entities, *, bands,
                     what):
    """One ``<parcel>_<band>`` band-power table (``reverse_timeseries`` / ``observed_power``).

    ``values``: (N * n_bands, V) log band power, rows in ``columns`` order; ``bands``:
    :func:`band_docs`; ``what``: starts the description ("Observed", ...).
    """
    frame = pd.DataFrame(np.asarray(values).T, columns=columns)
    return write_output(out, key, entities, frame, sources=common["Sources"],
                        **atlas_entities, parameters={
        **common, "Units": BAND_POWER_UNITS, "Bands": bands,
        "Description": f"{what} band power per source parcel and volume, one column per "
                       "<parcel>_<band>, one row per volume.",
    })


def write_reverse_outputs(pair, config, inputs, fit, metrics, summary, common, *, predicted,
                          observed, columns, split=None, fold=None, model=True,
                          model_extra=None) -> list:
    """The reverse direction's band-power tables, metrics and model.

    Parameters
    ----------
    predicted, observed : ndarray, shape (N * n_bands, V)
        Log band power per ``<source parcel>_<band>`` row (``columns``) and volume.
    split : samba_bids.alignment.Split, optional
        The blocks the run was scored on (default ``inputs.split``).
    fold : dict, optional
        Sidecar entries of a participant model across runs (``CrossValidation``, ``Fold``,
        ``TrainedOn``, ``Model``), added to the metrics sidecar.
    model : bool
        Write the model and its history (one run: it is the participant's reverse model).
    model_extra : dict, optional
        Further entries of the model sidecar (:func:`~.translate.reverse_model_sidecar`).
    """
    parcels = inputs.parcels
    split = inputs.split if split is None else split
    entities = dict(pair.bold_entities)
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.ephys_atlas_scale}
    out = config.output_dir
    band_doc = band_docs(config)
    written = []
    for key, values, what in (("reverse_timeseries", predicted, "SAMBA-predicted (from BOLD)"),
                              ("observed_power", observed, "Observed")):
        written.append(write_band_power(out, key, entities, values, columns, common,
                                        atlas_entities, bands=band_doc, what=what))
    written.append(write_output(out, "reverse_metrics", entities, metrics,
                                sources=common["Sources"], **atlas_entities, parameters={
        **common, "Bands": band_doc,
        "Description": "Per source parcel and band agreement of the band power predicted from "
                       "BOLD and the observed band power, on the test block.",
        "parcel": {"Description": "<source parcel>_<band>"},
        **metric_column_docs("all rows"),
        "Summary": summary,
        **split.to_sidecar(),
        **(fold or {}),
    }))
    if model:
        written += write_model(out, entities, "sambareverse", fit, config, common["Sources"],
                               split, parcels.provenance, extra=model_extra)
    return written
