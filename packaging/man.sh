#!/bin/sh
# man.sh BIN DIR VERSION: writes the gzipped manual pages of the binaries in
# BIN into DIR/man1 and DIR/man8:
#   krollctl*.1.gz, kroll-agent*.8.gz  one page per command, generated from
#       the binaries' command trees (cobra/doc, `BIN gen-man`);
#   kroll-coordinator.8.gz  a page around `kroll-coordinator --help`.
# Dated by SOURCE_DATE_EPOCH (default: the commit time), so that a build is
# reproducible. Run by `make man` and packaging/stage.sh.
set -eu
cd "$(dirname "$0")/.."
bin=$1
dir=$2
version=${3:-$(packaging/version.sh 2>/dev/null || echo dev)}
for b in krollctl kroll-agent kroll-coordinator; do
	[ -x "$bin/$b" ] || {
		echo "man.sh: $bin/$b not found (make build)" >&2
		exit 1
	}
done
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git show -s --format=%ct HEAD 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp/man1" "$dir.tmp/man8"
"$bin/krollctl" gen-man "$dir.tmp/man1" >/dev/null
"$bin/kroll-agent" gen-man "$dir.tmp/man8" >/dev/null

date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d 2>/dev/null || echo 1970-01-01)
{
	printf '.TH KROLL-COORDINATOR 8 "%s" "kroll %s" "kroll manual"\n' "$date" "$version"
	printf '.SH NAME\nkroll-coordinator \\- kroll coordinator node (Raft quorum member)\n.SH DESCRIPTION\n.nf\n'
	"$bin/kroll-coordinator" --help 2>&1 | sed -e 's/\\/\\e/g' -e 's/^[.'"'"']/\\\&&/' -e 's/—/\\-/g'
	printf '.fi\n.SH SEE ALSO\n.BR krollctl (1),\n.BR kroll-agent (8)\n'
} >"$dir.tmp/man8/kroll-coordinator.8"
gzip -9n "$dir.tmp"/man1/*.1 "$dir.tmp"/man8/*.8
rm -rf "$dir"
mv "$dir.tmp" "$dir"
