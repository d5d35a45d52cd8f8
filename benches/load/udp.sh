#!/usr/bin/env bash
# UDP load test, loopback only, stops by itself: N generated lines sent as datagrams at RATE
# per second (0: as fast as the socket takes them) into `logwarden run` with the rule pack.
# Prints received, events, dropped (counted by logwarden) and the rate.
#   benches/load/udp.sh [LINES] [RATE]      (default 1,000,000 at 200,000/s)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-1000000}"; RATE="${2:-200000}"
. benches/load/common.sh
udp=$(free_port DGRAM); api=$(free_port)
cat > "$work/lw.yml" <<YML
state: state.redb
rules: $PWD/rules
sources:
  load: {type: syslog_udp, listen: "127.0.0.1:$udp"}
api: {listen: "127.0.0.1:$api"}
$ALERT_SINK
YML
start_daemon
"$BIN" generate --lines "$LINES" --seed 7 --udp "127.0.0.1:$udp" --rate "$RATE"
sleep 1
rin=$(metric 'logwarden_source_records_in_total{source="load"}')
ev=$(metric 'logwarden_source_events_out_total{source="load"}')
dr=$(metric 'logwarden_source_dropped_total{source="load"}')
kd=$(metric 'logwarden_source_kernel_dropped_total{source="load"}')
echo "sent $LINES at ${RATE}/s: logwarden received $rin (not received: $((LINES - rin)), of which the kernel counted $kd as dropped at the socket), $ev events, $dr dropped by logwarden and counted"
kill -TERM "$pid"; wait "$pid" || true
