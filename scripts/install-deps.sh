#!/usr/bin/env bash
# Installs every Debian package renewd needs to build, test, benchmark and run.
# Idempotent: running it again changes nothing. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates
  libcurl4-openssl-dev libical-dev libsqlite3-dev sqlite3
  libsystemd-dev systemd libmicrohttpd-dev libjansson-dev libssl-dev
  libgmime-3.0-dev
  libcmocka-dev tzdata
  libicu-dev gettext
  python3 python3-aiosmtpd openssl
  chromium
  nginx-light postfix
  prometheus scdoc man-db
  curl
  tidy groff-base
  fonts-wqy-microhei
  clang-format
  lintian
  clang libclang-rt-14-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions on install; answer them up front (no local delivery).
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Packages that start services on install (nginx, postfix, prometheus) must not
# keep listening: tests start their own instances on their own ports.
for svc in nginx postfix prometheus; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
echo "install-deps: done"
