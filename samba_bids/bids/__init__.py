"""BIDS input and output of samba-bids.

- :mod:`.layout`: index the input dataset with pybids, validate it, pair each EEG/MEG run
  with its preprocessed BOLD.
- :mod:`.outputs`: the table of every file samba-bids writes (:data:`~.outputs.OUTPUTS`).
- :mod:`.derivatives`: derivative names from entities, atomic writers (a data file and its
  JSON sidecar together), ``dataset_description.json`` and ``.bidsignore``.

Nothing is imported here, so that importing one module does not load the others.
"""
