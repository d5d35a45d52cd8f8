#!/usr/bin/env bash
# Load test, loopback only, stops by itself: N generated RFC 3164 lines (sshd-heavy) sent over
# one TCP connection into `logwarden run`, with the default rule pack (or none with
# RULES=none), optionally archiving events to a JSON-lines file (OUTPUT=1, when the build has
# event outputs). Prints events/s from the first byte sent to the last event counted by
# /metrics, the peak RSS and the detection latency percentiles.
#   benches/load/tcp.sh [LINES]           (default 2,000,000)
#   RATE=100000 benches/load/tcp.sh ...   (paced: lines per second; latency under load)
#   RULES=none OUTPUT=1 ...               (TCP -> parse -> JSON lines file, as rsyslog_json.sh)
#   RULES=none OUTPUT=sshd ...            (keep only sshd failures with user and source IP)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-2000000}"
. benches/load/common.sh
tcp=$(free_port); api=$(free_port)
rules_line="rules: $PWD/rules"
[ "${RULES:-pack}" = none ] && rules_line=""
outputs=""
[ -n "${OUTPUT:-}" ] && outputs="outputs: {archive: {type: file, path: events.jsonl, max_bytes: 100000000000}}"
[ "${OUTPUT:-}" = sshd ] && outputs="outputs: {archive: {type: file, path: events.jsonl, max_bytes: 100000000000, where: {f: {event.dataset: sshd, event.outcome: failure}, condition: f}, fields: [user.name, source.ip]}}"
cat > "$work/lw.yml" <<YML
state: state.redb
$rules_line
$outputs
sources:
  load: {type: syslog_tcp, listen: "127.0.0.1:$tcp"}
api: {listen: "127.0.0.1:$api"}
$ALERT_SINK
YML
"$BIN" generate --lines "$LINES" --seed 7 > "$work/gen.log"
# Every 10,000 lines, a fresh address fails five passwords in a row: the pack's
# ssh-bruteforce fires, so there are alerts whose detection latency /metrics measures. The
# burst's lines take their time from the line before, so event time stays in order.
python3 - "$work/gen.log" "$work/load.log" <<'PY'
import sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f, open(dst, "wb") as out:
    for n, line in enumerate(f, 1):
        out.write(line)
        if n % 10000 == 0:
            stamp = line[:15]
            k = n // 10000
            ip = f"198.18.{k // 250 % 250}.{k % 250 + 1}".encode()
            for i in range(5):
                out.write(stamp + b" bastion sshd[77]: Failed password for root from " + ip
                          + b" port " + str(40000 + i).encode() + b" ssh2\n")
PY
start_daemon
events() { metric 'logwarden_source_events_out_total{source="load"}'; }
start=$(date +%s.%N)
send_tcp "$tcp" "$work/load.log" "${RATE:-0}"
sent=$(date +%s.%N)
# `message repeated N times` lines make N events: wait until the count stops moving.
last=-1
while :; do
    n=$(events); n=${n:-0}
    [ "$n" -ge "$LINES" ] && [ "$n" = "$last" ] && break
    last=$n; end=$(date +%s.%N); sleep 0.02
done
# With an output, the end is the last line in the file (flushed at least every second).
if [ "${OUTPUT:-}" = 1 ]; then
    until [ "$(wc -l < "$work/events.jsonl")" -ge "$n" ]; do sleep 0.01; done
    end=$(date +%s.%N)
fi
rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
page=$(curl -fs "127.0.0.1:$api/metrics")
python3 - "$start" "$sent" "$end" "$n" "$rss" "$LINES" <<'PY'
import sys
start, sent, end, n, rss, lines = (float(x) for x in sys.argv[1:])
print(f"{int(lines)} lines -> {int(n)} events in {end-start:.2f} s: {n/(end-start)/1e3:.0f} k events/s "
      f"(sender done after {sent-start:.2f} s); peak RSS {rss/1024:.0f} MiB")
PY
echo "$page" | grep -E '^logwarden_detection_latency_seconds|^logwarden_source_(quarantined|dropped)_total|^logwarden_alerts_total'
[ -n "${SHOW:-}" ] && echo "$page" | grep -E "^logwarden_rule_(matches|alerts)_total" | grep -v " 0$"; cat "$work/daemon.err" | tail -3
kill -TERM "$pid"; wait "$pid" || true
