#!/usr/bin/env bash
# reliability.sh runs the whole test suite (fault, restart and hostile-input
# tests included) and prints a summary table of the reliability scenarios:
# every test that proves one prints a line
#   RELIABILITY <tab> scenario <tab> sent <tab> failed <tab> peak RSS KiB <tab> leaked goroutines <tab> leaked fds
# ("-" where not measured), gathered here into markdown. The integration
# tests need nginx and Apache: sudo bash integration/install.sh.
#
#   bash integration/reliability.sh            # the whole suite
#   bash integration/reliability.sh ./fastcgi  # some packages only
set -uo pipefail
cd "$(dirname "$0")/.."

pkgs=("$@")
((${#pkgs[@]})) || pkgs=(./...)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

go test -count=1 -v -timeout 15m "${pkgs[@]}" >"$log" 2>&1
status=$?

echo "| scenario | requests | failed | peak RSS | leaked goroutines | leaked fds |"
echo "|---|---:|---:|---:|---:|---:|"
grep -P '^\s+\S+_test\.go:\d+: RELIABILITY\t' "$log" | sed -E 's/^\s+\S+_test\.go:[0-9]+: RELIABILITY\t//' |
	awk -F'\t' '{
		rss = ($4 ~ /^[0-9]+$/ && $4 > 0) ? sprintf("%.1f MiB", $4 / 1024) : "-"
		printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, rss, $5, $6
	}'
echo
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
echo "tests and subtests: $passed passed, $failed failed, $skipped skipped"
if ((status != 0)); then
	echo
	echo "go test failed (exit $status):"
	# go test -v prints a test's log after its --- FAIL line.
	grep -E -A20 '^\s*--- FAIL|^panic:' "$log" | head -200
fi
exit $status
