#!/bin/sh
# One HTTP GET with curl --max-time 1, reported as one line, so a test can tell apart a client
# that got its answer, one whose own timeout fired (curl's exit 28) and one whose response was
# cut short (exit 18), with curl's own measure of the time taken.
#
#   curl_client.sh URL [--repeat N]
#
# Single request: client=curl outcome=ok|timeout|error kind=none|curlNN status=S head=H
#                 bytes=B elapsed=E     (head: header bytes received; bytes: body bytes)
# --repeat N: one warm-up request, then N more in the same curl (one kept-alive connection),
#             each timed by curl; client=curl outcome=ok requests=N median=S min=S max=S
# Exit status 0 whenever the line was printed.
set -u
curl=${CURL:-/usr/bin/curl}
[ $# -ge 1 ] || { echo "usage: curl_client.sh URL [--repeat N]" >&2; exit 2; }
url=$1
repeat=0
if [ $# -ge 3 ] && [ "$2" = "--repeat" ]; then repeat=$3; fi

if [ "$repeat" -le 0 ]; then
  out=$("$curl" -sS -o /dev/null --max-time 1 \
        -w '%{http_code} %{size_header} %{size_download} %{time_total}' "$url" 2>/dev/null)
  rc=$?
  set -- $out
  case $rc in
    0) outcome=ok kind=none ;;
    28) outcome=timeout kind=curl28 ;;
    *) outcome=error kind=curl$rc ;;
  esac
  echo "client=curl outcome=$outcome kind=$kind status=${1:-0} head=${2:-0} bytes=${3:-0} elapsed=${4:-0}"
  exit 0
fi

# --max-time bounds the whole run of N+1 transfers; each is timed by curl itself.
urls=""
i=0
while [ "$i" -le "$repeat" ]; do urls="$urls $url"; i=$((i + 1)); done
# shellcheck disable=SC2086
# The bodies go to stdout (discarded), the -w lines to stderr (kept).
out=$("$curl" -s --max-time $((repeat + 10)) \
      -w '%{stderr}%{http_code} %{time_total} %{num_connects}\n' $urls 2>&1 >/dev/null)
rc=$?
if [ $rc -ne 0 ]; then
  echo "client=curl outcome=error kind=curl$rc status=0 head=0 bytes=0 elapsed=0"
  exit 0
fi
# Skip the warm-up line (it includes the connect); the rest must have reused the connection.
echo "$out" | awk -v n="$repeat" '
  NR == 1 { next }
  { if ($1 != 200 || $3 != 0) bad = 1; t[NR - 1] = $2 }
  END {
    if (bad || NR - 1 != n) { print "client=curl outcome=error kind=reuse status=0 head=0 bytes=0 elapsed=0"; exit }
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (t[j] < t[i]) { x = t[i]; t[i] = t[j]; t[j] = x }
    m = (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
    printf "client=curl outcome=ok requests=%d median=%.4f min=%.4f max=%.4f\n", n, m, t[1], t[n]
  }'
