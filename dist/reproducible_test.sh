#!/usr/bin/env bash
# bash dist/reproducible_test.sh DIR builds the release twice, into DIR/a
# and DIR/b, from two clones at two paths, the second with an empty Go
# build cache, and fails unless every file of the two is the same, byte
# for byte. DIR/a is then the release to test.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: bash dist/reproducible_test.sh DIR, such as bash dist/reproducible_test.sh /tmp/release" >&2
	exit 2
fi
dir=$1
cd "$(dirname "$0")/.."
cache=$(mktemp -d)
trap 'chmod -R u+w "$cache"; rm -rf "$cache"' EXIT

bash dist/build.sh "$dir/a" >/dev/null
GOCACHE=$cache bash dist/build.sh "$dir/b" >/dev/null
if ! diff -r "$dir/a" "$dir/b"; then
	echo "reproducible_test.sh: two builds of $(git rev-parse HEAD) differ" >&2
	exit 1
fi
echo "reproducible_test.sh: two builds are byte-identical: $(cd "$dir/a" && ls | tr '\n' ' ')"
