#!/usr/bin/env bash
# Set up a fresh Debian machine (Python 3.11, root) for the pipeline and its tests.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(ffmpeg)
if [ "${ACRN_WITH_SLURM:-0}" = 1 ]; then
  APT_PKGS+=(slurmctld slurmd slurm-client munge)
fi
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
# torch/torchvision first, pinned to the wheels available on this kind of machine.
$PY -m pip install -q torch==2.14.1 torchvision==0.29.1
$PY -m pip install -q -e '.[test]'
