// Package adversary holds the tests that attack kroll's safety promises from
// outside the process: a stolen host certificate at the Raft port, a kernel
// that fails in staging, a host that lies in its gossip view, a clock that
// steps. Each test failed on the code before the fix it guards (issue 12);
// docs/security.md maps every threat to the test that proves it is stopped.
package adversary
