"""The pretrained model a participant's model is fine-tuned from (``--init-from``)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import DataError, NoInputError

#: The group model's path under an OUTPUT_DIR.
GROUP_MODEL = Path("group") / "desc-groupsamba_model.pt"


def pretrained_model(config: Config):
    """The model ``--init-from`` names, to fine-tune (:func:`~samba_bids.training.fit_samba`'s
    ``init``): ``"group"``, OUTPUT_DIR's group model (:data:`GROUP_MODEL`), or a model file.

    Returns
    -------
    model : samba_bids.model.samba.SAMBA or None
        None without ``--init-from``.
    path : pathlib.Path or None

    Raises
    ------
    NoInputError
        If the file does not exist (with ``group``: the group level has not written it).
    DataError
        If it cannot be read.
    """
    if config.init_from is None:
        return None, None
    if config.init_from == "group":
        path = Path(config.output_dir) / GROUP_MODEL
        if not path.is_file():
            raise NoInputError(
                f"--init-from group: {path} is missing; write it first with 'samba-bids "
                f"BIDS_DIR {config.output_dir} group --group-model' (after the participant "
                "level of the participants to pretrain on), or pass a model file.")
    else:
        path = Path(config.init_from).expanduser()
        if not path.is_file():
            raise NoInputError(f"--init-from {config.init_from}: no such model file; pass "
                               "'group' or the path of a desc-samba(group)_model.pt.")
    import torch

    from ..model.samba import SAMBA

    try:
        model = SAMBA.from_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # unreadable checkpoint, of any kind
        raise DataError(f"{path}: cannot read the model ({err}); rerun the level that wrote "
                        "it.") from err
    return model, path
