// Package wire holds the JSON types of kroll's HTTP API, one definition
// shared by the coordinator's server, the agent and krollctl. The types
// land with the coordinator issue.
package wire
