# Shared by the load tests (sourced, not run): the binary, a work directory removed at exit,
# free loopback ports, the daemon's start and its metrics, and the TCP sender.
BIN="${BIN:-target/release/logwarden}"
[ -x "$BIN" ] || cargo build --release --quiet
work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

# free_port [STREAM|DGRAM]: a port nothing listens on now.
free_port() {
    python3 -c "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_${1:-STREAM});s.bind(('127.0.0.1',0));print(s.getsockname()[1])"
}

# Alerts go to a file: the load tests measure the pipeline, not a receiver.
ALERT_SINK='sinks:
  out: {type: file, path: alerts.jsonl}
routes:
  - sinks: [out]
    group_by: [rule.id]'

# start_daemon: runs `$BIN run -c $work/lw.yml` (its API on $api) and waits for /healthz.
start_daemon() {
    "$BIN" run -c "$work/lw.yml" 2> "$work/daemon.err" &
    pid=$!
    until curl -fs "127.0.0.1:$api/healthz" >/dev/null 2>&1; do sleep 0.05; done
}

# metric SERIES: one sample of /metrics, e.g. 'logwarden_source_events_out_total{source="load"}'.
metric() { curl -fs "127.0.0.1:$api/metrics" | awk -v s="$1" '$1 == s {print $2}'; }

# send_tcp PORT FILE [RATE]: the file over one connection, as fast as it is taken (sendfile)
# or paced at RATE lines/s in steps of 1/100 s.
send_tcp() {
    python3 - "$1" "$2" "${3:-0}" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
rate = int(sys.argv[3])
with open(sys.argv[2], "rb") as f:
    if rate == 0:
        s.sendfile(f)
    else:
        lines = f.read().splitlines(keepends=True)
        step = max(1, rate // 100)
        start = time.monotonic()
        for k in range(0, len(lines), step):
            due = start + k / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            s.sendall(b"".join(lines[k:k + step]))
s.close()
PY
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT; fails if the process $pid exits.
wait_port() {
    until python3 -c "import socket;socket.create_connection(('127.0.0.1',$1)).close()" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { echo "the peer exited at start" >&2; exit 1; }
        sleep 0.05
    done
}

# measure_peer NAME PORT OUT LINES: sends $work/load.log to PORT over one connection and
# prints NAME's lines/s from the first byte sent to the last of LINES lines in OUT (or to
# when OUT stops growing, for a peer that drops some).
measure_peer() {
    local name="$1" port="$2" out="$3" lines="$4" start end n n2 last=-1
    start=$(date +%s.%N)
    send_tcp "$port" "$work/load.log"
    while :; do
        n=$(wc -l < "$out" 2>/dev/null || echo 0)
        [ "$n" -ge "$lines" ] && break
        if [ "$n" = "$last" ] && [ "$n" -gt 0 ]; then
            # A stalled count: peers flush on their own time; wait a little more.
            sleep 0.2; n2=$(wc -l < "$out"); [ "$n2" = "$n" ] && break
        fi
        last=$n; sleep 0.02
    done
    end=$(date +%s.%N)
    python3 -c "s,e,n=float('$start'),float('$end'),int('$n'); print(f'$name: {n} lines -> JSON file in {e-s:.2f} s: {n/(e-s)/1e3:.0f} k lines/s')"
}
