// Package wire holds the JSON types of kroll's HTTP API, one definition
// shared by the coordinator's server, the agent and krollctl.
//
// Every error response, on every route, is an Error: {"kind":…,"value":…}
// with Kind from the fixed set below.
package wire
