package main

// What a stopping Emporium node may take, from SIGTERM to its exit (src/node.rs,
// `Node::run_until_stopped`): hand its shards over (bounded by HANDOVER_DEADLINE), finish
// in-flight HTTP requests (each bounded by the node's request_timeout), then wait for
// in-flight actor turns (DRAIN_DEADLINE). None of the two node bounds is a setting;
// drain_test.go reads them from src/node.rs so that a change there fails this checker's
// tests until the numbers here follow.

import "time"

const (
	handoverDeadline      = 20 * time.Second
	actorDrainDeadline    = 10 * time.Second
	defaultRequestTimeout = 10 * time.Second
)

// drainBudget is the longest a node takes to stop after SIGTERM.
type drainBudget struct {
	Handover       time.Duration
	InFlight       time.Duration
	Actors         time.Duration
	Total          time.Duration
	RequestTimeout string
}

func budgetFor(requestTimeout time.Duration) drainBudget {
	return drainBudget{
		Handover: handoverDeadline,
		InFlight: requestTimeout,
		Actors:   actorDrainDeadline,
		Total:    handoverDeadline + requestTimeout + actorDrainDeadline,
	}
}
