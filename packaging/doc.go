// Package packaging holds no Go code of kroll's own: this directory carries
// the nfpm configurations, maintainer scripts and staging scripts of the
// kroll-agent, kroll-coordinator and krollctl .deb and .rpm packages (see
// README.md), and this package's tests build those packages and check them
// with lintian, dpkg (installing into a throwaway root), rpm and
// systemd-analyze.
package packaging
