# samba-bids BIDS App image.
#
#   GPU (default base, CUDA PyTorch):  docker build -t samba-bids:0.1.0 --build-arg VERSION=0.1.0 .
#   CPU only:                          docker build -t samba-bids:0.1.0-cpu \
#                                          --build-arg BASE=python:3.11-slim-bookworm .
#   Run:  docker run --rm --read-only --tmpfs /tmp -v /data:/data:ro -v /out:/out \
#             samba-bids:0.1.0 /data /out participant --participant-label 01
#
# The templates are fetched at build time (needs internet then, never at run time).
ARG BASE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${BASE}

ARG VERSION=dev
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

LABEL org.opencontainers.image.title="samba-bids" \
      org.opencontainers.image.description="BIDS App translating EEG/MEG into fMRI BOLD with SAMBA" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="BSD-3-Clause" \
      org.opencontainers.image.base.name="${BASE}" \
      org.opencontainers.image.documentation="https://github.com/samba-bids/samba-bids#readme"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONNOUSERSITE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MNE_DONTWRITE_HOME=true \
    SAMBA_TEMPLATES=/opt/templates \
    SAMBA_CONTAINER_TYPE=docker \
    SAMBA_CONTAINER_TAG=samba-bids:${VERSION}

WORKDIR /opt/samba-bids
COPY docker/constraints.txt /opt/samba-bids/docker/constraints.txt
# The CUDA base ships torch; the CPU base gets the pinned CPU wheel.
RUN if ! python -c "import torch" 2>/dev/null; then \
        python -m pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    fi

COPY . /opt/samba-bids
RUN python -m pip install --no-cache-dir -c docker/constraints.txt /opt/samba-bids \
    && python -c "import samba_bids, torch; print('samba-bids', samba_bids.__version__, 'torch', torch.__version__)"

# Templates and atlases from their official sources (CBIG, TemplateFlow, HCP Pipelines, MNE),
# baked into the image so that nothing is downloaded at run time.
RUN samba-bids-fetch-templates /opt/templates \
        --spaces fsaverage5 MNI152NLin6Asym fsLR fsaverage --scales 100 200 400 -v \
    && chmod -R a+rX /opt/templates

# Non-root (uid 10001: clear of the base images' own users); numeric so hosts resolve it.
RUN useradd --create-home --uid 10001 --user-group --shell /bin/bash samba \
    && chmod 0755 /opt/samba-bids/docker/entrypoint.sh
USER 10001:10001
WORKDIR /tmp

HEALTHCHECK NONE
ENTRYPOINT ["/opt/samba-bids/docker/entrypoint.sh"]
