#!/bin/sh
# stage.sh DIR VERSION BIN: writes the generated package inputs into DIR:
#   agent.toml, coordinator.toml  the conffiles /etc/kroll/*.toml, made from
#       docs/examples/*.toml (every key, with its default) with each setting
#       commented out: a fresh installation runs on defaults only and the
#       agent refuses to start until datacenter, coordinator.urls and
#       trust.release_keys are set (the example's values are placeholders
#       such as "fra1" and coord1.example.net).
#   man/man1, man/man8  the gzipped manual pages (packaging/man.sh): one
#       per command of krollctl and kroll-agent, generated from their
#       command trees, and kroll-coordinator's around its --help.
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

# The manual pages: man1/krollctl*.1.gz, man8/kroll-agent*.8.gz (one per
# command, from the command trees) and man8/kroll-coordinator.8.gz.
SOURCE_DATE_EPOCH=$(git show -s --format=%ct HEAD 2>/dev/null || date +%s) packaging/man.sh "$bin" "$dir/man" "$version"

for p in kroll-agent:agent kroll-coordinator:coordinator krollctl:coordinator; do
	name=${p%%:*}
	packaging/notices.sh "$dir/$name.notices" "$name" "./${p#*:}/cmd/$name"
done
