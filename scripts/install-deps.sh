#!/usr/bin/env bash
# Installs the Debian 12 packages llmos needs to build and test, when any is missing.
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail

packages=(cmake g++ ninja-build pkg-config libgtest-dev libbenchmark-dev libeigen3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# ccache only speeds up rebuilds; install it alongside when anything else is missing.
if ((${#missing[@]} > 0)) && ! command -v ccache >/dev/null; then missing+=(ccache); fi

if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "llmos: missing packages: ${missing[*]}" >&2
  echo "llmos: install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "llmos: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
