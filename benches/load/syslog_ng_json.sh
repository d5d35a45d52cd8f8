#!/usr/bin/env bash
# The peer on the same job as `RULES=none OUTPUT=1 benches/load/tcp.sh` and rsyslog_json.sh:
# syslog-ng (foreground, its own config) takes the same generated lines over one TCP
# connection, parses them (RFC 3164) and writes one JSON object per line to a file with
# format-json. Loopback only; stops by itself. Prints lines/s from the first byte sent to the
# last line written.
#   benches/load/syslog_ng_json.sh [LINES]     (default 2,000,000)
# Debian's syslog-ng-core conflicts with rsyslog (both are the system logger), so it can be
# run unpacked instead of installed:
#   apt-get download syslog-ng-core && dpkg -x syslog-ng-core_*.deb /tmp/sng
#   SYSLOG_NG_ROOT=/tmp/sng benches/load/syslog_ng_json.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-2000000}"
ROOT="${SYSLOG_NG_ROOT:-}"
SYSLOG_NG="$ROOT/usr/sbin/syslog-ng"
[ -x "$SYSLOG_NG" ] || { echo "syslog-ng not found at $SYSLOG_NG (see the header)" >&2; exit 1; }
if [ -n "$ROOT" ]; then
    export LD_LIBRARY_PATH="$ROOT/usr/lib/syslog-ng${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
modules=$(echo "$ROOT"/usr/lib/syslog-ng/3.*)
. benches/load/common.sh
tcp=$(free_port)
"$BIN" generate --lines "$LINES" --seed 7 > "$work/load.log"
version=$("$SYSLOG_NG" --version | awk '/^Config version/ {print $3}')
# The same five fields as rsyslog_json.sh; a large window and output batching so the network
# source is not throttled by its defaults (log-iw-size 1000).
cat > "$work/syslog-ng.conf" <<CONF
@version: $version
options { threaded(yes); stats_freq(0); log-fifo-size(100000); flush-lines(1000); };
source s_tcp {
  network(ip("127.0.0.1") port($tcp) transport("tcp") max-connections(10) log-iw-size(100000));
};
destination d_json {
  file("$work/out.jsonl" template("\$(format-json @timestamp=\${ISODATE} host=\${HOST} program=\${PROGRAM} pid=\${PID} message=\${MSG})\n"));
};
log { source(s_tcp); destination(d_json); };
CONF
"$SYSLOG_NG" -F --no-caps --module-path "$modules" -f "$work/syslog-ng.conf" \
    -p "$work/syslog-ng.pid" -R "$work/syslog-ng.persist" -c "$work/syslog-ng.ctl" &
pid=$!
wait_port "$tcp"
measure_peer syslog-ng "$tcp" "$work/out.jsonl" "$LINES"
head -c 300 "$work/out.jsonl"; echo
kill -TERM "$pid"; wait "$pid" || true
