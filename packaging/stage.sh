#!/bin/sh
# stage.sh DIR VERSION BIN: writes the generated package inputs into DIR:
#   agent.toml, coordinator.toml  the conffiles /etc/kroll/*.toml, made from
#       docs/examples/*.toml (every key, with its default) with each setting
#       commented out: a fresh installation runs on defaults only and the
#       agent refuses to start until datacenter, coordinator.urls and
#       trust.release_keys are set (the example's values are placeholders
#       such as "fra1" and coord1.example.net).
#   kroll-agent.8.gz, kroll-coordinator.8.gz, krollctl.1.gz  manual pages
#       wrapping each binary's --help (from BIN).
#   changelog.yml  a one-entry changelog for VERSION, package release 1
#       (nfpm writes changelog.Debian.gz from it).
#   kroll-agent.notices, kroll-coordinator.notices, krollctl.notices  the
#       third-party notices of each binary (notices.sh, go-licenses),
#       shipped as /usr/share/doc/<package>/THIRD_PARTY_NOTICES.
set -eu
cd "$(dirname "$0")/.."
dir=$1
version=$2
bin=$3
mkdir -p "$dir"

for f in agent coordinator; do
	{
		printf '%s\n' "# /etc/kroll/$f.toml, installed by the kroll-$f package as a"
		printf '%s\n' "# conffile: your changes are kept on upgrades."
		awk '/^[A-Za-z0-9_."-]+[ \t]*=/ { print "# " $0; next } { print }' "docs/examples/$f.toml"
	} >"$dir/$f.toml.tmp"
	mv "$dir/$f.toml.tmp" "$dir/$f.toml"
done

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
date=$(git show -s --format=%cI HEAD 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
cat >"$dir/changelog.yml" <<EOT
- semver: "$version-1"
  date: $date
  deb:
    urgency: medium
    distributions: [unstable]
  packager: "kroll developers <kroll-dev@users.noreply.github.com>"
  changes:
    - note: "Built from commit $commit; the changes are in the git history."
EOT

# manpage NAME SECTION SUMMARY: a manual page around bin/NAME --help.
manpage() {
	[ -x "$bin/$1" ] || {
		echo "stage.sh: $bin/$1 not found (make build)" >&2
		exit 1
	}
	{
		printf '.TH %s %s "%s" "kroll %s" "kroll"\n' "$(echo "$1" | tr a-z A-Z)" "$2" "$(printf %s "$date" | cut -c1-10)" "$version"
		printf '.SH NAME\n%s \\- %s\n.SH DESCRIPTION\n.nf\n' "$1" "$3"
		"$bin/$1" --help 2>&1 | sed -e 's/\\/\\e/g' -e 's/^[.'"'"']/\\\&&/' -e 's/—/\\-/g'
		printf '.fi\n.SH SEE ALSO\nhttps://github.com/kroll-dev/kroll\n'
	} | gzip -9n >"$dir/$1.$2.gz.tmp"
	mv "$dir/$1.$2.gz.tmp" "$dir/$1.$2.gz"
}
manpage kroll-agent 8 "kroll on-host agent"
manpage kroll-coordinator 8 "kroll coordinator node (Raft quorum member)"
manpage krollctl 1 "operator CLI of kroll"

for p in kroll-agent:agent kroll-coordinator:coordinator krollctl:coordinator; do
	name=${p%%:*}
	packaging/notices.sh "$dir/$name.notices" "$name" "./${p#*:}/cmd/$name"
done
