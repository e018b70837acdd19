#!/usr/bin/env bash
# Container entry point: point every cache at a writable place (read-only images, Apptainer
# --cleanenv), then run samba-bids with the arguments given to the container.
set -euo pipefail
scratch="${TMPDIR:-/tmp}/samba-bids-cache"
mkdir -p "$scratch"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$scratch/matplotlib}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$scratch/numba}"
export TORCH_HOME="${TORCH_HOME:-$scratch/torch}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$scratch}"
export MNE_DONTWRITE_HOME=true
export SAMBA_TEMPLATES="${SAMBA_TEMPLATES:-/opt/templates}"
exec samba-bids "$@"
