#!/usr/bin/env bash
# Debian packages the tests need; installs only what is missing (quick when all are there).
set -euo pipefail
# iproute2: network namespaces for the browser tests; chromium: the browser Playwright drives;
# pulseaudio(+utils), libportaudio2, libasound2-plugins: voice-client's audio device test;
# espeak-ng: speech for the transcription tests; docker-compose: checks docker-compose.yml;
# nftables: blocks UDP in the ICE-TCP tests' namespaces; coturn: the TURN relay (over TLS) the
# TURN tests start in their namespaces;
# postgresql: the store tests start their own server from its binaries (bench/pgserver.py);
# redis-server: the cluster tests start their own on a free loopback port (bench/redisserver.py);
# haproxy: the cluster's reverse proxy (deploy/haproxy.cfg), run by the cluster proxy test;
# faketime: nodes whose clocks are minutes apart (the cluster's clock-skew test);
# fonts-noto-cjk: Japanese in Chromium's screenshots (the smoke's and the e2e tests') as text,
# not boxes; fonts-noto-color-emoji: the phone app's talking mark (🔊) likewise.
packages=(iproute2 docker-compose chromium espeak-ng pulseaudio pulseaudio-utils libportaudio2
  libasound2-plugins nftables postgresql redis-server coturn haproxy faketime fonts-noto-cjk
  fonts-noto-color-emoji)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "need root to install: ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
