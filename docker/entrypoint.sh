#!/usr/bin/env bash
# Container entry point (Docker ENTRYPOINT, Apptainer %runscript).
#
# Points every cache and config folder at a writable scratch folder, so that the image works
# under `docker run --read-only --tmpfs /tmp` and `apptainer run --cleanenv` (HOME unwritable
# or absent), fills SAMBA_CONTAINER_TYPE/TAG for dataset_description.json's
# GeneratedBy.Container, then runs `samba-bids ARGS...`, or another samba-bids command when
# the first argument names one (`samba-bids-fetch-templates DEST`, `samba-bids-simulate ...`).
set -euo pipefail

writable() { mkdir -p "$1" 2>/dev/null && [ -w "$1" ]; }

scratch_root=""
for candidate in "${TMPDIR:-}" /tmp /var/tmp /dev/shm; do
    if [ -n "$candidate" ] && writable "$candidate"; then scratch_root="$candidate"; break; fi
done
if [ -z "$scratch_root" ]; then
    echo "samba-bids: error: no writable temporary folder (tried \$TMPDIR, /tmp, /var/tmp," \
         "/dev/shm); run with --tmpfs /tmp (docker) or bind one (apptainer -B)." >&2
    exit 73
fi
export TMPDIR="$scratch_root"
scratch="$scratch_root/samba-bids-cache-$(id -u)"
mkdir -p -m 0700 "$scratch"

# A HOME that cannot be written (read-only image, apptainer --no-home) moves to scratch.
if [ -z "${HOME:-}" ] || ! writable "$HOME"; then
    export HOME="$scratch/home"
    mkdir -p "$HOME"
fi

export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$scratch/xdg-cache}"
export XDG_CONFIG_HOME="${XDG_CONFIG_HOME:-$scratch/xdg-config}"
export XDG_DATA_HOME="${XDG_DATA_HOME:-$scratch/xdg-data}"
export XDG_STATE_HOME="${XDG_STATE_HOME:-$scratch/xdg-state}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$scratch/matplotlib}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$scratch/numba}"
export TORCH_HOME="${TORCH_HOME:-$scratch/torch}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$scratch/torchinductor}"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$scratch/triton}"
export CUDA_CACHE_PATH="${CUDA_CACHE_PATH:-$scratch/cuda}"
# MNE reads and would write ~/.mne/mne-python.json: give it its own home, never written.
export _MNE_FAKE_HOME_DIR="${_MNE_FAKE_HOME_DIR:-$scratch/mne-home}"
export MNE_DONTWRITE_HOME=true
export MNE_DATA="${MNE_DATA:-$scratch/mne_data}"
# Jobs that share cores sleep instead of spinning at the end of each parallel region
# (issue 17; benchmarks/bench_concurrency.py); set before torch loads its OpenMP runtime.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONNOUSERSITE=1
for folder in "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_STATE_HOME" \
              "$MPLCONFIGDIR" "$NUMBA_CACHE_DIR" "$TORCH_HOME" "$_MNE_FAKE_HOME_DIR"; do
    mkdir -p "$folder"
done
# pybids' database and the stage caches go to --work-dir, by default $TMPDIR/samba_bids_work.

export SAMBA_TEMPLATES="${SAMBA_TEMPLATES:-/opt/templates}"
if [ -n "${APPTAINER_CONTAINER:-${SINGULARITY_CONTAINER:-}}" ]; then
    export SAMBA_CONTAINER_TYPE=apptainer  # the image's ENV says docker: it was built so
    image="${APPTAINER_CONTAINER:-${SINGULARITY_CONTAINER:-}}"
    export SAMBA_CONTAINER_TAG="${SAMBA_CONTAINER_TAG:-$(basename "$image")}"
else
    export SAMBA_CONTAINER_TYPE="${SAMBA_CONTAINER_TYPE:-docker}"
    export SAMBA_CONTAINER_TAG="${SAMBA_CONTAINER_TAG:-samba-bids}"
fi

case "${1:-}" in
    samba-bids|samba-bids-*) exec "$@" ;;
esac
exec samba-bids "$@"
