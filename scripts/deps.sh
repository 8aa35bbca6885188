#!/usr/bin/env bash
# Installs the Debian packages given as arguments when they are missing.
# Idempotent; fails with a clear message when it cannot install.
set -euo pipefail

missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# The VM tests fetch Debian kernels with 'apt-get download': the package
# lists must know them.
need_update=0
if ! apt-cache pkgnames linux-image-6.1 2>/dev/null | grep -q .; then need_update=1; fi
if [ ${#missing[@]} -gt 0 ]; then need_update=1; fi

if [ $need_update = 0 ]; then
  echo "deps: all present ($*)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages: ${missing[*]:-none} (or stale apt lists); run 'make deps' as root" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "deps: apt-get not found: kroll's tests need a Debian machine" >&2
  exit 1
fi
echo "deps: apt-get update"
apt-get update -qq || { echo "deps: apt-get update failed" >&2; exit 1; }
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "deps: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi
echo "deps: ok"
