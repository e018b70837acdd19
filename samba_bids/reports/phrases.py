"""How the methods boilerplate words numbers, provenance and settings.

Plain functions of values (no run context, no citations) that return the strings
:mod:`samba_bids.reports.boilerplate` puts into its templates; the sentences that cite a
reference stay there, next to the sections that cite it.
"""

from __future__ import annotations

import re

#: Confound columns listed by name before "and N more".
MAX_LISTED_CONFOUNDS = 24


def number_text(value) -> str:
    """A number as written in the text: ``45.0`` -> ``45``, ``0.001`` -> ``0.001``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return number_text(int(value))
    return f"{value:g}"


def count_text(value) -> str:
    """An integer with thousands separators (``123,456``)."""
    return f"{int(value):,}"


def code_list(names, limit=MAX_LISTED_CONFOUNDS) -> str:
    """``names`` as code, comma separated; past ``limit``, ``and N more``."""
    names = [str(n) for n in names]
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def provenance_text(value) -> str:
    """A provenance value for the text (``head<->MRI`` -> ``head↔MRI``)."""
    return str(value).replace("<->", "\u2194")


def space_kind(space: str) -> str:
    """``'surface'`` (fsaverage), ``'cifti'`` (fsLR) or ``'volume'``."""
    if space.startswith("fsaverage"):
        return "surface"
    if space.startswith("fsLR"):
        return "cifti"
    return "volume"


def fallback_atlas(subject: str) -> str:
    """The offline fallback parcellation on ``subject``, in words."""
    return (f"a k-means parcellation of the {subject} sphere from samba-bids' offline fallback "
            "templates (built from nilearn's fsaverage5; not the Schaefer 2018 atlas, so "
            "the results are for testing only)")


def filter_phrase(highpass_hz, lowpass_hz, requested_lowpass_hz) -> str:
    """The band-pass applied, and whether the low-pass was lowered below the requested one."""
    fir = ("with MNE-Python's default zero-phase FIR filter (firwin design, default "
           "transition bandwidths)")
    high, low = highpass_hz, lowpass_hz
    if high and low:
        phrase = f"band-pass filtered between {number_text(high)} and {number_text(low)} Hz {fir}"
    elif low:
        phrase = f"low-pass filtered at {number_text(low)} Hz {fir}"
    elif high:
        phrase = f"high-pass filtered at {number_text(high)} Hz {fir}"
    else:
        phrase = "not filtered"
    if low and requested_lowpass_hz and float(low) < float(requested_lowpass_hz) - 1e-6:
        phrase += (f" (the requested low-pass of {number_text(requested_lowpass_hz)} Hz was "
                   "lowered below the Nyquist frequency)")
    return phrase


def resample_clause(sfreq_hz, ephys_sfreq_hz: float) -> str:
    """``', then resampled to N Hz'`` when the rate changed (or the final rate if unknown)."""
    if sfreq_hz and abs(float(sfreq_hz) - ephys_sfreq_hz) > 1e-6:
        return f", then resampled to {number_text(ephys_sfreq_hz)} Hz"
    if sfreq_hz:
        return ""
    return f", at a final sampling rate of {number_text(ephys_sfreq_hz)} Hz"


def head_model_phrase(provenance: dict) -> str:
    """The head model of the forward solution (``HeadModel``, ``BEM`` provenance)."""
    head = str(provenance.get("HeadModel", "")).strip()
    bem = provenance_text(provenance.get("BEM", "")).strip()
    if not head:
        return "the template head model"
    if head.startswith("single-layer"):
        return ("a single-layer boundary-element model of the inner skull"
                + (f" ({bem})" if bem else ""))
    if head.startswith("three-layer"):
        return "a three-layer boundary-element model" + (f" (`{bem}`)" if bem else "")
    return "a " + provenance_text(head) + (f"; {bem}" if bem else "")


def noise_cov_phrase(provenance: dict, modality: str) -> str:
    """The noise covariance of the inverse operator (``NoiseCovariance``, ``...Rank``)."""
    kind = str(provenance.get("NoiseCovariance", "")).strip()
    rank = provenance.get("NoiseCovarianceRank")
    rank_text = f"rank {rank}" if rank is not None else ""
    if kind.startswith("ad hoc"):
        values = ("0.2 µV for EEG channels" if modality == "eeg"
                  else "5 fT/cm for gradiometers and 20 fT for magnetometers")
        return ("a diagonal ad hoc noise covariance (MNE-Python's `make_ad_hoc_cov`: "
                f"{values}" + (f"; {rank_text}" if rank_text else "") + ")")
    if kind.startswith("empirical"):
        dof = re.search(r"(\d+) degrees of freedom", kind)
        inside = [f"{dof.group(1)} degrees of freedom"] if dof else []
        inside += [rank_text] if rank_text else []
        return ("a noise covariance estimated from the empty-room recording, preprocessed like "
                "the run" + (f" ({'; '.join(inside)})" if inside else ""))
    if kind:
        return f"the noise covariance: {provenance_text(kind)}"
    return "the noise covariance of the inverse operator"


def fmriprep_confound_groups(columns) -> str:
    """What fMRIPrep confound columns are, in words (``'6 rigid-body motion ...'``)."""
    motion = [c for c in columns if c.startswith(("trans_", "rot_")) and "derivative" not in c]
    derivatives = [c for c in columns if c.endswith("_derivative1")]
    groups = []
    if motion:
        groups.append(f"{len(motion)} rigid-body motion parameters")
    if derivatives:
        groups.append(f"{len(derivatives)} temporal derivatives of them" if motion
                      else f"{len(derivatives)} temporal derivatives of motion parameters")
    if "csf" in columns:
        groups.append("the mean cerebrospinal-fluid signal")
    if "white_matter" in columns:
        groups.append("the mean white-matter signal")
    return groups[0] if len(groups) == 1 else ", ".join(groups[:-1]) + " and " + groups[-1]


def confound_sentence(columns, strategy: str, auto_confounds) -> str:
    """The nuisance regressors of the BOLD (``columns`` of the ``strategy``).

    ``auto_confounds``: the fMRIPrep columns of the ``auto`` strategy; when all ``columns``
    are among them, they are also named by group.
    """
    columns = list(columns or [])
    if strategy == "none":
        return "No confound regression was requested (`--confounds none`)."
    if not columns:
        return ("No nuisance regressors were available for this run (no confounds table, or "
                "no column that varied), so none were regressed out.")
    if strategy == "auto" and set(columns) <= set(auto_confounds):
        derivative = any(c.endswith("_derivative1") for c in columns)
        return (f"The {len(columns)} nuisance regressors of the `auto` confound strategy were "
                f"taken from the fMRIPrep confounds table: {code_list(columns)} "
                f"({fmriprep_confound_groups(columns)}); missing values"
                + (" (the first row of the derivatives)" if derivative else "")
                + " were set to 0.")
    return (f"All {len(columns)} non-constant columns of the confounds table (strategy "
            f"`{strategy}`) were used as nuisance regressors: {code_list(columns)}; missing "
            "values were set to 0.")


def alignment_sentence(clock, trigger) -> str:
    """How the two recordings were put on one clock (``RunInputs.clock``; else the trigger)."""
    if clock is None:
        clock = f"volume triggers {trigger!r}" if trigger else "shared start"
    if clock.startswith("volume triggers"):
        name = trigger or clock[len("volume triggers"):].strip().strip("'\"")
        return ("The two recordings were put on one clock with the volume triggers recorded "
                f"with the electrophysiology (annotation `{name}`), one per BOLD volume.")
    if clock.startswith("shared start"):
        return ("No volume triggers were given, so both recordings were assumed to start at "
                "the same time (t = 0), with one volume every TR; this assumption could not "
                "be checked.")
    return f"The two recordings were aligned by {provenance_text(clock)}."


def band_list(level: int, sfreq_hz: float) -> str:
    """The wavelet bands and their edges (``'A3 0–6.25 Hz, D3 6.25–12.5 Hz, ...'``)."""
    from ..model.wavelet import band_names, band_ranges_hz

    return ", ".join(f"{name} {number_text(lo)}\u2013{number_text(hi)} Hz"
                     for name, (lo, hi) in zip(band_names(level),
                                                band_ranges_hz(level, float(sfreq_hz))))


def device_phrase(device: str, device_name=None) -> str:
    """The torch device trained on, in words."""
    if device.startswith("cuda"):
        return "a CUDA GPU" + (f" ({device_name})" if device_name else "")
    if device == "cpu":
        return "the CPU"
    if device == "auto":
        return "the device chosen automatically (a CUDA GPU when available, else the CPU)"
    return f"the `{device}` device"


def fit_sentence(n_parameters, epochs_run, best_epoch) -> str:
    """The reverse model's size and training (``'It had N trainable parameters, ...'``)."""
    trained = (f"trained for {epochs_run} epochs and kept the weights of epoch {best_epoch}"
               if epochs_run is not None and best_epoch is not None else "")
    if n_parameters is not None:
        return f"It had {count_text(n_parameters)} trainable parameters" + (
            f", {trained}." if trained else ".")
    return f"It {trained}." if trained else ""
