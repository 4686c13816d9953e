#!/usr/bin/env bash
# bash dist/build.sh OUTDIR builds the release of the commit checked out
# into OUTDIR:
#   cgirun-linux-amd64, cgirun-linux-arm64   static binaries
#   cgirun_VERSION-1_amd64.deb, _arm64.deb   Debian packages
#   cgirun-VERSION-1.x86_64.rpm, .aarch64.rpm
#   SHA256SUMS
# It builds the commit checked out (HEAD), never changes that are not
# committed. It needs Go, git and the module proxy (for the modules and
# nfpm), nothing else. Two builds of the same commit give the same bytes: the binaries
# carry no build ID or path of this machine (-trimpath, -buildid=), and
# every file in the packages has the commit's time.
set -euo pipefail

# nfpm builds the packages; run with "go run" so that it never enters the
# module's go.mod.
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0

if [[ $# -ne 1 ]]; then
	echo "usage: bash dist/build.sh OUTDIR, such as bash dist/build.sh /tmp/release" >&2
	exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."

# The build is of the commit, from a clone of it: changes not committed
# are not in it, and the clone has the .git directory from which Go reads
# the version (a worktree's .git file gives none).
rev=$(git rev-parse HEAD)
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
	echo "dist/build.sh: the work tree has changes that are not committed: they are not in the build of $rev" >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-checkout . "$work/src"
git -C "$work/src" -c advice.detachedHead=false checkout --quiet "$rev"
cd "$work/src"

# Go stamps the main module's version from git (a tag such as v1.2.0, or a
# pseudo-version with the commit's time and revision) and the revision
# (vcs.revision, vcs.time): "cgirun version" prints it. -buildvcs=true
# overrides a GOFLAGS that turns it off.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
for arch in amd64 arm64; do
	GOOS=linux GOARCH=$arch go build -buildvcs=true -trimpath -ldflags=-buildid= \
		-o "$out/cgirun-linux-$arch" ./cmd/cgirun
done

# The packages' version, from the module version: v1.2.0 is 1.2.0, a
# pseudo-version v0.0.0-20261203070217-02f501b35e76 is
# 0.0.0~git20261203070217.02f501b35e76 ("~" sorts before the release).
modversion=$(go version -m "$out/cgirun-linux-amd64" | awk '$1 == "mod" { print $3 }')
version=${modversion#v}
if [[ $version =~ ^([0-9]+\.[0-9]+\.[0-9]+)-(0\.)?([0-9]{14})-([0-9a-f]{12})(\+dirty)?$ ]]; then
	version="${BASH_REMATCH[1]}~git${BASH_REMATCH[3]}.${BASH_REMATCH[4]}${BASH_REMATCH[5]}"
fi
if [[ ! $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
	echo "dist/build.sh: module version $modversion gives no package version (a commit of a git checkout is needed)" >&2
	exit 1
fi

# The man page, from the definitions --help prints, by a binary for this
# machine, with no CGIRUN_* variable of the environment in its defaults.
host=$work/cgirun
go build -buildvcs=true -trimpath -ldflags=-buildid= -o "$host" ./cmd/cgirun
stage=dist/stage
mkdir "$stage"
env -i PATH=/usr/bin:/bin "$host" man | gzip -9n >"$stage/cgirun.1.gz"

# /usr/share/doc/cgirun/copyright in Debian's machine-readable format, the
# license's text taken from LICENSE.
{
	cat <<-'END'
		Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
		Upstream-Name: cgirun
		Source: https://github.com/cgirun/cgirun

		Files: *
		Copyright: The cgirun Authors
		License: BSD-3-Clause

		License: BSD-3-Clause
	END
	sed -e '/^Copyright /,/^$/d' -e 's/^$/./' -e 's/^/ /' LICENSE
} >"$stage/copyright"

export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
for arch in amd64 arm64; do
	cp "$out/cgirun-linux-$arch" "$stage/cgirun"
	for packager in deb rpm; do
		ARCH=$arch VERSION=$version GOFLAGS= go run "$NFPM" package --config dist/nfpm.yaml --packager "$packager" --target "$out/" >/dev/null
	done
done

(cd "$out" && sha256sum cgirun-linux-amd64 cgirun-linux-arm64 ./*.deb ./*.rpm | sed 's| \./| |' >SHA256SUMS)
echo "dist/build.sh: cgirun $version ($modversion) in $out:"
(cd "$out" && cat SHA256SUMS)
