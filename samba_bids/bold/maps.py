"""Statistics across maps of one format: the group level's mean and SD of participant maps."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def mean_sd_images(paths):
    """Element-wise mean and SD (ddof 1) of maps of one format and shape (NIfTI, GIFTI, CIFTI).

    NaNs are left out (``numpy.nanmean``/``nanstd``); with one map the SD is NaN. The outputs
    are float32 images like the first map (its header, affine, GIFTI metadata or CIFTI axes).

    Parameters
    ----------
    paths : list of path-like
        The maps, as nibabel reads them.

    Returns
    -------
    mean, sd : nibabel image

    Raises
    ------
    DataError
        If the maps differ in shape.
    """
    import nibabel as nib

    imgs = [nib.load(str(p)) for p in paths]

    def data(img):
        if isinstance(img, nib.GiftiImage):
            return np.stack([np.asarray(d.data, dtype=np.float64) for d in img.darrays])
        return np.asanyarray(img.dataobj, dtype=np.float64)

    stack = [data(img) for img in imgs]
    if len({a.shape for a in stack}) != 1:
        raise DataError(f"the participant maps differ in shape ({sorted({a.shape for a in stack})}).")
    stack = np.stack(stack)
    mean = np.nanmean(stack, axis=0).astype(np.float32)
    with np.errstate(invalid="ignore"):
        sd = (np.nanstd(stack, axis=0, ddof=1) if len(stack) > 1
              else np.full_like(mean, np.nan)).astype(np.float32)
    ref = imgs[0]

    def like(values):
        if isinstance(ref, nib.GiftiImage):
            arrays = [nib.gifti.GiftiDataArray(np.ascontiguousarray(row), intent=d.intent,
                                               datatype="NIFTI_TYPE_FLOAT32", meta=d.meta)
                      for row, d in zip(values, ref.darrays)]
            return nib.GiftiImage(meta=ref.meta, darrays=arrays)
        if isinstance(ref, nib.Cifti2Image):
            return nib.Cifti2Image(values, header=ref.header, nifti_header=ref.nifti_header)
        header = ref.header.copy()
        header.set_data_dtype(np.float32)
        return nib.Nifti1Image(values, ref.affine, header)

    return like(mean), like(sd)
