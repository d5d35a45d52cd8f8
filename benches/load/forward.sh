#!/usr/bin/env bash
# Forwarder load test, loopback only, stops by itself: N generated lines over one TCP
# connection into a forwarder (`mode: forward`), which buffers them on disk and posts them
# (gzip, 1000 events a request, one request at a time) to an aggregator's HTTP intake; the
# aggregator runs the rule pack and answers each request once its events are committed.
# Prints events/s from the first byte sent to the last event counted at the aggregator.
#   benches/load/forward.sh [LINES]     (default 500,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-500000}"
. benches/load/common.sh
tcp=$(free_port); intake=$(free_port); api=$(free_port); fapi=$(free_port)
mkdir -p "$work/agg" "$work/fwd"
cat > "$work/agg/lw.yml" <<YML
state: state.redb
rules: $PWD/rules
sources:
  intake: {type: http, listen: "127.0.0.1:$intake"}
api: {listen: "127.0.0.1:$api"}
$ALERT_SINK
YML
cat > "$work/fwd/lw.yml" <<YML
mode: forward
state: state.redb
sources:
  load: {type: syslog_tcp, listen: "127.0.0.1:$tcp"}
forward:
  http: {url: "http://127.0.0.1:$intake/ingest", compression: gzip}
  batch_max_wait: 100ms
  batch_max_events: ${BATCH:-1000}
api: {listen: "127.0.0.1:$fapi"}
YML
"$BIN" generate --lines "$LINES" --seed 7 > "$work/load.log"
"$BIN" run -c "$work/agg/lw.yml" 2> "$work/agg/err" &
pid=$!
"$BIN" run -c "$work/fwd/lw.yml" 2> "$work/fwd/err" &
fpid=$!
trap 'kill "$pid" "$fpid" 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -fs "127.0.0.1:$api/healthz" >/dev/null 2>&1 && curl -fs "127.0.0.1:$fapi/healthz" >/dev/null 2>&1; do sleep 0.05; done
start=$(date +%s.%N)
send_tcp "$tcp" "$work/load.log"
sent=$(date +%s.%N)
fwd_events() { curl -fs "127.0.0.1:$fapi/metrics" | awk '$1 == "logwarden_source_events_out_total{source=\"load\"}" {print $2}'; }
agg_events() { metric 'logwarden_source_events_out_total{source="intake"}'; }
# The forwarder's count settles first (`message repeated` lines make several events).
last=-1
while :; do n=$(fwd_events); n=${n:-0}; [ "$n" -ge "$LINES" ] && [ "$n" = "$last" ] && break; last=$n; sleep 0.05; done
until [ "$(agg_events)" -ge "$n" ]; do sleep 0.02; done
end=$(date +%s.%N)
python3 - "$start" "$sent" "$end" "$n" <<'PY'
import sys
start, sent, end, n = (float(x) for x in sys.argv[1:])
print(f"{int(n)} events forwarded and detected on in {end-start:.2f} s: {n/(end-start)/1e3:.0f} k events/s "
      f"(sender done after {sent-start:.2f} s)")
PY
kill -TERM "$fpid" "$pid"; wait "$fpid" "$pid" || true
