#!/usr/bin/env bash
# The peer on the same job as `RULES=none OUTPUT=1 benches/load/tcp.sh`: Debian's rsyslog
# (foreground, its own config) takes the same generated lines over one TCP connection,
# parses them (RFC 3164) and writes one JSON object per line to a file. Loopback only;
# stops by itself. Prints lines/s from the first byte sent to the last line written.
#   benches/load/rsyslog_json.sh [LINES]     (default 2,000,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES="${1:-2000000}"
RSYSLOGD="${RSYSLOGD:-/usr/sbin/rsyslogd}"
[ -x "$RSYSLOGD" ] || { echo "rsyslogd not found (apt-get install rsyslog)" >&2; exit 1; }
. benches/load/common.sh
tcp=$(free_port)
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
wait_port "$tcp"
measure_peer rsyslog "$tcp" "$work/out.jsonl" "$LINES"
kill -TERM "$pid"; wait "$pid" || true
