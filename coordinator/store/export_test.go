package store

import (
	"time"

	"github.com/hashicorp/raft"
)

// ProposeRaw proposes data as a log entry as is, bypassing the checks of
// Apply (tests: a command written by another version of kroll).
func (s *Store) ProposeRaw(data []byte) error {
	return s.raft.Apply(data, 5*time.Second).Error()
}

// RaftState returns the node's Raft state (tests).
func (s *Store) RaftState() raft.RaftState { return s.raft.State() }
