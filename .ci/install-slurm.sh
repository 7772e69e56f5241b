#!/usr/bin/env bash
# Install Debian's SLURM (controller + node daemon + client tools) and MUNGE so the
# test suite can start a real single-node cluster (tests/slurm_cluster.py).
# Idempotent: does nothing when the binaries are already on PATH. Needs root.
set -euo pipefail

needed=(slurmctld slurmd sbatch squeue scontrol munged)
missing=0
for binary in "${needed[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || missing=1
done
if [[ $missing -eq 0 ]]; then
    echo "install-slurm: SLURM and MUNGE already installed"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-slurm: needs root to apt-get install slurm-wlm and munge" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# slurm-wlm pulls slurmctld, slurmd and slurm-client; munge provides munged and mungekey.
# --no-install-recommends keeps out mail and doc packages the tests never use.
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
echo "install-slurm: installed $(slurmctld -V) and $(munged -V 2>&1 | head -n1)"
