#!/usr/bin/env bash
# Memory with many tracked groups, loopback only, stops by itself: KEYS sshd failures, each
# from its own address (so the pack's per-address behaviours track KEYS groups each), sent
# over TCP at RATE lines/s into `logwarden run`, PASSES times (default 1; with 2 every group
# holds two events). Prints the groups each rule tracks and the daemon's RSS and peak RSS when
# the last event is counted, then again SETTLE seconds later (default 15: the state is
# re-based at full size about then, and its peak belongs in the measure).
#   benches/load/keys.sh [KEYS] [RATE]     (default 1,000,000 at 100,000/s)
#   PASSES=2 SETTLE=0 benches/load/keys.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS="${1:-1000000}"; RATE="${2:-100000}"
. benches/load/common.sh
tcp=$(free_port); api=$(free_port)
cat > "$work/lw.yml" <<YML
state: state.redb
rules: ${RULES_DIR:-$PWD/rules}
sources:
  load: {type: syslog_tcp, listen: "127.0.0.1:$tcp"}
api: {listen: "127.0.0.1:$api"}
$ALERT_SINK
YML
python3 - "$KEYS" "$work/load.log" <<'PY'
import sys
n, dst = int(sys.argv[1]), sys.argv[2]
with open(dst, "w") as out:
    for i in range(n):
        # 10.x.y.z, one address per line; all within one minute of event time.
        a, b, c = (i >> 16) & 255, (i >> 8) & 255, i & 255
        out.write(f"Dec  3 10:00:{i * 60 // n:02d} web1 sshd[{1000 + i % 5000}]: Failed password for "
                  f"invalid user u{i % 997} from 10.{a}.{b}.{c} port {1024 + i % 60000} ssh2\n")
PY
start_daemon
PASSES="${PASSES:-1}"
for _ in $(seq "$PASSES"); do send_tcp "$tcp" "$work/load.log" "$RATE"; done
until [ "$(metric 'logwarden_source_events_out_total{source="load"}')" -ge $((KEYS * PASSES)) ]; do sleep 0.1; done
curl -fs "127.0.0.1:$api/metrics" | grep -E '^logwarden_rule_state_groups' | grep -v ' 0$'
rss() { awk -v when="$1" '/VmRSS|VmHWM/ {printf "%s %s %d MiB\n", when, $1, $2/1024}' /proc/$pid/status; }
rss "last event:"
sleep "${SETTLE:-15}"
rss "${SETTLE:-15} s later:"
kill -TERM "$pid"; wait "$pid" || true
