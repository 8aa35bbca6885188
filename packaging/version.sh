#!/bin/sh
# Prints the package version of the checkout: valid for dpkg and rpm, and
# ordered the way the builds were made.
#
#   tag v1.2.3, exactly             -> 1.2.3
#   5 commits after v1.2.3 (abc1234) -> 1.2.3+git5.abc1234
#   no tag at all                    -> 0.0.0~git20261126130500.abc1234
#   uncommitted changes              -> ... with ".dirty" appended
#
# The "-" of git describe is not allowed in a Debian upstream version
# without a revision nor in an RPM version; "~" sorts before the release
# in both, so untagged builds sort before the first tag.
set -eu
cd "$(dirname "$0")/.."

dirty=""
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=".dirty"
fi
sha=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)

if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.3-5-gabc1234 (--long: also for an exact tag, with 0 commits)
	tag=${desc%-*-g*}
	rest=${desc#"$tag"-}
	n=${rest%%-*}
	base=$(printf %s "${tag#v}" | tr -- - '~')
	if [ "$n" = 0 ]; then
		echo "${base}${dirty:++dirty}"
	else
		echo "${base}+git${n}.${sha}${dirty}"
	fi
	exit 0
fi
if [ "$sha" = unknown ]; then
	echo "0.0.0~unknown"
	exit 0
fi
when=$(TZ=UTC git show -s --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)
echo "0.0.0~git${when}.${sha}${dirty}"
