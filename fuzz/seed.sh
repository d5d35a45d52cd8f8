#!/usr/bin/env bash
# Copies real inputs from the shared corpus into fuzz/corpus/<target>/, so a first run starts from
# log lines and CloudTrail files as they occur in the wild rather than from empty input.
#
# Usage: fuzz/seed.sh            (from anywhere; corpus at <repo>/../shared/corpus)
#        CORPUS=/path fuzz/seed.sh
#        LOGWARDEN=/path/to/logwarden fuzz/seed.sh   (also seed ecs_json from `replay --events`)
#
# Needs bash, awk and head; jq for the one-record-per-file CloudTrail seeds (skipped without it).
# Seeds are named seed-*, so re-running replaces them and leaves libFuzzer's own finds alone.
set -euo pipefail

fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${CORPUS:-$fuzz/../../shared/corpus}"
if [[ ! -d $src ]]; then
    echo "seed.sh: no corpus at $src (set CORPUS=)" >&2
    exit 1
fi
out="$fuzz/corpus"
ssh_log="$src/loghub/OpenSSH/OpenSSH_2k.log"
linux_log="$src/loghub/Linux/Linux_2k.log"
sshguard="$src/sshguard/tests-ssh-section.txt"

# put TARGET NAME: stdin becomes corpus/TARGET/seed-NAME.
put() {
    mkdir -p "$out/$1"
    cat >"$out/$1/seed-$2"
}

# each TARGET PREFIX FILE STEP: every STEP-th line of FILE as its own seed. Byte-exact (LC_ALL=C)
# and without a trailing newline, as a framer hands a record over.
each() {
    local target=$1 prefix=$2 file=$3 step=$4
    mkdir -p "$out/$target"
    LC_ALL=C awk -v step="$step" -v dir="$out/$target" -v p="$prefix" '
        (NR - 1) % step == 0 { f = dir "/seed-" p "-" NR; printf "%s", $0 > f; close(f) }
    ' "$file"
}

# Frame targets read 3 knob bytes first: max length - 1, then a little-endian u16 cut offset.
# 0x7f gives a 128-byte limit, so some loghub lines are over it and some under.
knobs() { printf '\x7f\x00\x01'; }

# --- frame_newline: runs of log lines, CRLF and an unterminated last line included.
for start in 1 400 1200; do
    { knobs; sed -n "${start},$((start + 24))p" "$ssh_log"; } | put frame_newline "openssh-$start"
done
{ knobs; head -n 20 "$linux_log" | sed 's/$/\r/'; } | put frame_newline linux-crlf
{ knobs; tail -n 5 "$ssh_log"; } | put frame_newline openssh-tail-no-newline

# --- frame_octet: the same lines as RFC 6587 `LEN SP MSG` frames, byte counts from awk in C locale.
octet() { LC_ALL=C awk '{ printf "%d %s", length($0), $0 }'; }
for start in 1 900; do
    { knobs; sed -n "${start},$((start + 24))p" "$ssh_log" | octet; } | put frame_octet "openssh-$start"
done
{ knobs; head -n 10 "$linux_log" | octet; printf '\n<13>not counted\n'; } | put frame_octet linux-resync

# --- syslog: single lines, RFC 3164 from loghub and crowdsec, RFC 5424 written out here.
each syslog openssh "$ssh_log" 10
each syslog linux "$linux_log" 20
for d in "$src"/crowdsec-hub/ssh* "$src"/crowdsec-hub/sshd*; do
    for f in "$d"/*.log; do
        [[ -f $f ]] && each syslog "$(basename "$d")" "$f" 5
    done
done
printf '%s' '<34>1 2025-10-11T22:14:15.003Z mymachine.example.com su - ID47 - '"'"'su root'"'"' failed for lonvick on /dev/pts/8' | put syslog rfc5424
printf '%s' '<165>1 2025-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event' | put syslog rfc5424-sd
printf '%s' 'Dec 10 07:07:38 LabSZ sshd[24206]: message repeated 3 times: [ Failed password for root from 52.80.34.196 port 36060 ssh2]' | put syslog repeated
printf '%s' 'Dec 10 07:07:38 LabSZ auth.info sshd[24206]: Accepted publickey for bob from 10.0.0.2 port 50000 ssh2' | put syslog busybox-priority

# --- sshd_line: message text only (what the extractors see), and sshguard's SSH test inputs.
LC_ALL=C awk -v dir="$out/sshd_line" '
    BEGIN { system("mkdir -p \"" dir "\"") }
    (NR - 1) % 5 == 0 { sub(/^[^:]*:[^:]*:[^:]*: /, ""); f = dir "/seed-openssh-" NR; printf "%s", $0 > f; close(f) }
' "$ssh_log"
# tests-ssh-section.txt is a header line, then (input, expected result, "M") triples.
LC_ALL=C awk -v dir="$out/sshd_line" '
    NR > 1 && (NR - 2) % 3 == 0 { f = dir "/seed-sshguard-" NR; printf "%s", $0 > f; close(f) }
' "$sshguard"

# --- cloudtrail_stream: whole files in each accepted shape.
ct_files=()
while IFS= read -r f; do ct_files+=("$f"); done < <(ls -S "$src"/invictus-aws-dataset/CloudTrail/*.json | tail -n 4)
for f in "${ct_files[@]}"; do
    put cloudtrail_stream "invictus-$(basename "$f")" <"$f"
done
for f in "$src"/stratus-red-team/detonation-logs/aws.defense-evasion.organizations-leave.json \
    "$src"/stratus-red-team/detonation-logs/aws.initial-access.console-login-without-mfa.json; do
    [[ -f $f ]] && put cloudtrail_stream "stratus-$(basename "$f")" <"$f"
done
head -n 20 "$src/crowdsec-hub/aws-cloudtrail/aws-cloudtrail.log" | put cloudtrail_stream crowdsec-ndjson

# --- cloudtrail_record: one record per seed, cut out of the files above with jq.
if command -v jq >/dev/null; then
    n=0
    {
        for f in "${ct_files[@]}"; do jq -c '.Records[]' "$f"; done
        jq -c '.[]' "$src"/stratus-red-team/detonation-logs/aws.initial-access.console-login-without-mfa.json
        head -n 40 "$src/panther-analysis/aws_cloudtrail_rule_tests.jsonl" | jq -c '.log'
        head -n 10 "$src/crowdsec-hub/aws-cloudtrail/aws-cloudtrail.log"
    } | while IFS= read -r line; do
        n=$((n + 1))
        printf '%s' "$line" | put cloudtrail_record "$n"
    done
else
    echo "seed.sh: jq not found, cloudtrail_record gets no seeds" >&2
fi

# --- ecs_json: what logwarden writes (the round-trip target's natural input).
printf '%s' '{"@timestamp":"2025-12-10T06:55:46Z","event":{"dataset":"sshd","category":["authentication"],"type":["start"],"action":"ssh_login","outcome":"failure"},"user":{"name":"root"},"source":{"ip":"203.0.113.7","port":42393},"host":{"name":"web-1"},"process":{"name":"sshd","pid":4211},"message":"Failed password for root from 203.0.113.7 port 42393 ssh2"}' | put ecs_json sshd
printf '%s' '{"@timestamp":"2023-07-10T11:42:31.5Z","event":{"created":"2023-07-10T11:50:00Z","dataset":"cloudtrail","provider":"signin.amazonaws.com","action":"ConsoleLogin","outcome":"success","original":"{\"eventName\":\"ConsoleLogin\"}"},"user":{"name":"bob","id":"AIDA1","target":{"name":"root"}},"group":{"name":"wheel"},"source":{"ip":"2001:db8::1","domain":"example.com","geo":{"country_iso_code":"DE","city_name":"Berlin","location":{"lat":52.52,"lon":13.405}}},"cloud":{"provider":"aws","account":{"id":"123456789012"},"region":"us-east-1"},"log":{"file":{"path":"/var/log/auth.log"},"offset":1234,"syslog":{"facility":{"code":4},"severity":{"code":6},"version":1,"msgid":"ID47","structured_data":{"exampleSDID@32473":{"iut":"3"}}}},"process":{"command_line":"/bin/su -"},"message":"hi"}' | put ecs_json full
if [[ -n ${LOGWARDEN:-} ]]; then
    n=0
    "$LOGWARDEN" replay --events --format syslog --year 2025 "$ssh_log" 2>/dev/null | awk 'NR % 20 == 1' |
        while IFS= read -r line; do
            n=$((n + 1))
            printf '%s' "$line" | put ecs_json "replay-$n"
        done
fi

# Rule files: the default pack and the SigmaHQ rules the tests load.
mkdir -p "$out/rule_load"
for f in "$fuzz"/../rules/*.yml "$fuzz"/../tests/data/sigma-cloudtrail/*.yml; do
    cp "$f" "$out/rule_load/seed-$(basename "$f")"
done

# Scan reports: every scanner output in the corpus, whole.
for f in "$src"/scanners/*/*.json "$src"/scanners/*/*.sarif; do
    [[ -f $f ]] && put scan_report "$(basename "$f")" <"$f"
done

for d in "$out"/*/; do
    printf '%-20s %s seeds\n' "$(basename "$d")" "$(find "$d" -name 'seed-*' | wc -l)"
done
