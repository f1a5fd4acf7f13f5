#!/usr/bin/env bash
# Installs the Debian packages q2c needs beside Python, when they are missing:
#   libharfbuzz-subset0  font subsetting, which makes WeasyPrint about four times faster
#   libpango-1.0-0 libpangoft2-1.0-0  WeasyPrint's text layout
#   fonts-dejavu-core fonts-noto-cjk  the invoice fonts (Latin, Japanese)
#   fonts-noto-core      Noto Sans Arabic and Noto Sans Hebrew, for Arabic and Hebrew invoices
#   poppler-utils        pdftotext, pdffonts and pdftoppm, to read PDFs back in checks
#   wordpress mariadb-server php-cli php-mysql  a real WordPress on loopback for the
#                        WordPress connector's tests (tests/wordpress_server.py)
#   openjdk-17-jre-headless  Java for the local Spark that dbt's spark target runs
#   redis-server         the Celery broker of the fan-out tests (tests/redis_server.py)
#   chromium             the browser Playwright drives in the portal's browser journey
#                        (tests/test_portal_browser.py)
set -euo pipefail
packages=(libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
          fonts-noto-cjk fonts-noto-core poppler-utils
          wordpress mariadb-server php-cli php-mysql
          openjdk-17-jre-headless redis-server chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "q2c needs these Debian packages: ${missing[*]}; install them with apt-get." >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "Installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq >/dev/null || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
