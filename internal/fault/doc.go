// Package fault holds ctrader's fault suite: tests that run the real binary
// as separate processes against a real Postgres, break it the way production
// breaks it (SIGKILL under load, Postgres terminating every connection,
// concurrent batches racing status changes, the scheduling leader dying around
// a window, SIGKILL in the middle of partition maintenance) and then check the exactly-once invariants in the database:
// every acknowledged event processed once, won totals exact, one evaluation
// per rule version and event, one scheduled run per window.
//
// The tests are ordinary Go tests, so `go test -race ./...` runs them; they
// are skipped under -short. The package has no code of its own.
package fault
