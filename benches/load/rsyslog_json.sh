#!/usr/bin/env bash
# The peer on the same job as `RULES=none OUTPUT=1 benches/load/tcp.sh`: Debian's rsyslog
# (foreground, its own config) takes the same generated lines over one TCP connection,
# parses them (RFC 3164) and writes one JSON object per line to a file. Loopback only;
# stops by itself. Prints lines/s from the first byte sent to the last line written.
#   benches/load/rsyslog_json.sh [LINES]     (default 2,000,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-2000000}"
BIN="${BIN:-target/release/logwarden}"
RSYSLOGD="${RSYSLOGD:-/usr/sbin/rsyslogd}"
[ -x "$RSYSLOGD" ] || { echo "rsyslogd not found (apt-get install rsyslog)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
tcp=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$BIN" generate --lines "$LINES" --seed 7 > "$work/load.log"
cat > "$work/rsyslog.conf" <<CONF
global(workDirectory="$work")
module(load="imtcp")
template(name="json" type="list" option.jsonf="on") {
  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="program" name="programname" format="jsonf")
  property(outname="pid" name="procid" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
}
ruleset(name="json") {
  action(type="omfile" file="$work/out.jsonl" template="json" asyncWriting="on" ioBufferSize="256k" flushOnTXEnd="off")
}
input(type="imtcp" address="127.0.0.1" port="$tcp" ruleset="json")
CONF
"$RSYSLOGD" -n -f "$work/rsyslog.conf" -i "$work/rsyslog.pid" &
pid=$!
until python3 -c "import socket;socket.create_connection(('127.0.0.1',$tcp)).close()" 2>/dev/null; do sleep 0.05; done
start=$(date +%s.%N)
python3 - "$tcp" "$work/load.log" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "rb") as f:
    s.sendfile(f)
s.close()
PY
last=-1
while :; do
    n=$(wc -l < "$work/out.jsonl" 2>/dev/null || echo 0)
    [ "$n" -ge "$LINES" ] && break
    if [ "$n" = "$last" ] && [ "$n" -gt 0 ]; then
        # A stalled count: rsyslog's async writer flushes on its own time; wait a little more.
        sleep 0.2; n2=$(wc -l < "$work/out.jsonl"); [ "$n2" = "$n" ] && break
    fi
    last=$n; end=$(date +%s.%N); sleep 0.02
done
end=$(date +%s.%N)
python3 -c "import sys; s,e,n=float('$start'),float('$end'),int('$n'); print(f'rsyslog: {n} lines -> JSON file in {e-s:.2f} s: {n/(e-s)/1e3:.0f} k lines/s')"
kill -TERM "$pid"; wait "$pid" || true
