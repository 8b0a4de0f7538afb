#!/usr/bin/env bash
# Prepares the patched Coraza that Rampart's builds use (README.md here).
#
#   bash waf/corazapatch/prepare.sh [OUT]     OUT defaults to build/
#
# Copies the Coraza module that go.mod names out of the module cache into
# OUT/coraza-VERSION, applies VERSION.patch from this folder, and writes
# OUT/rampart.mod and OUT/rampart.sum: go.mod and go.sum plus a replace line
# for that copy. Build with them:
#
#   GOFLAGS=-modfile=$PWD/build/rampart.mod go build ./cmd/rampart
#
# The repository's go.mod stays as it is, so `go install` still works (with
# stock Coraza). A Coraza version without a patch here is an error: port the
# patch first (README.md says how).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
module=github.com/corazawaf/coraza/v3

cd "$root"
# This script reads the repository's own go.mod, whatever the caller set.
export GOFLAGS= GOWORK=off

version=$(go list -m -f '{{.Version}}' "$module")
patch=$here/$version.patch
if [ ! -f "$patch" ]; then
	echo "prepare.sh: go.mod asks for Coraza $version, and waf/corazapatch has no $version.patch" >&2
	echo "prepare.sh: port the patch to $version first (waf/corazapatch/README.md)" >&2
	exit 1
fi

copy=$out/coraza-$version
sum=$(sha256sum "$patch" | cut -d' ' -f1)
if [ "$(cat "$copy/.rampart-patch" 2>/dev/null)" != "$sum" ]; then
	src=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	if [ ! -f "$src/go.mod" ]; then
		echo "prepare.sh: go mod download $module@$version gave no module directory" >&2
		exit 1
	fi
	rm -rf "$copy" "$copy.tmp"
	cp -R "$src" "$copy.tmp"
	chmod -R u+w "$copy.tmp"
	# git apply outside any repository (GIT_DIR points nowhere): paths are
	# taken relative to the copy, and a hunk that does not fit exactly
	# fails the whole patch. patch(1) where there is no git.
	if command -v git >/dev/null 2>&1; then
		apply=(env GIT_DIR=/nonexistent git apply --unsafe-paths -p1 "$patch")
	else
		apply=(patch -p1 --batch --fuzz=0 --no-backup-if-mismatch -i "$patch")
	fi
	if ! (cd "$copy.tmp" && "${apply[@]}"); then
		echo "prepare.sh: $version.patch does not apply to Coraza $version" >&2
		exit 1
	fi
	echo "$sum" >"$copy.tmp/.rampart-patch"
	mv "$copy.tmp" "$copy"
	echo "prepare.sh: Coraza $version with $(basename "$patch") in $copy"
fi

cp go.mod "$out/rampart.mod.tmp"
cp go.sum "$out/rampart.sum"
go mod edit -replace="$module=$copy" "$out/rampart.mod.tmp"
mv "$out/rampart.mod.tmp" "$out/rampart.mod"
