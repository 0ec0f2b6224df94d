#!/bin/sh
# Installs the Debian packages that building, running and testing orderd
# need, but only those that are missing, so repeated runs cost nothing.
# Usage: scripts/deps.sh [run|test]
set -eu
want="cmake make gcc pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
libcurl4-openssl-dev libpq-dev libssl-dev"
if [ "${1:-run}" = test ]; then
  want="$want libcmocka-dev python3 python3-requests python3-psycopg2
postgresql-15 postgresql-client-15 iproute2 clang libclang-rt-14-dev sqlite3
prometheus prometheus-alertmanager python3-yaml clang-format nftables faketime
patroni etcd-server etcd-client python3-etcd slowhttptest util-linux pgbouncer
chromium haproxy python3-jsonschema fonts-dejavu-core"
fi
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# Packages such as prometheus ship a service: keep apt from starting it
# (Debian's policy-rc.d convention), we only want their tools.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
  $SUDO chmod +x $policy
fi
# shellcheck disable=SC2086
rc=0
$SUDO apt-get install -y -qq --no-install-recommends $missing || rc=$?
[ -n "$policy" ] && $SUDO rm -f "$policy"
exit $rc
