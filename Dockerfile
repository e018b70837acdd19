# samba-bids BIDS App image.  Build:  docker build -t samba-bids .
# CPU build (default) or a CUDA base:  docker build --build-arg BASE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime .
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    SAMBA_TEMPLATES=/opt/templates \
    SAMBA_CONTAINER_TYPE=docker

WORKDIR /opt/samba-bids
COPY . /opt/samba-bids
RUN python -m pip install --no-cache-dir "torch==2.13.0" && \
    python -m pip install --no-cache-dir /opt/samba-bids

ENTRYPOINT ["/opt/samba-bids/docker/entrypoint.sh"]
