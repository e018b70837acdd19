"""samba-bids: translate electrophysiology (EEG/MEG) into fMRI BOLD with SAMBA, as a BIDS App."""

__version__ = "0.1.0"
