package fault_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// backfillState is what the fault test reads of a backfill.
type backfillState struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Progress struct {
		Pages           int   `json:"pages"`
		EventsEvaluated int64 `json:"events_evaluated"`
		EventsSkipped   int64 `json:"events_skipped"`
		EventsMatched   int64 `json:"events_matched"`
	} `json:"progress"`
}

// A serve process killed with SIGKILL in the middle of an apply backfill
// loses no page and repeats none: the restarted process runs the page the
// dead one held from the position its last committed page recorded, and every
// stored event is evaluated and acted on once.
func TestSIGKILLDuringApplyBackfill(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := newTestDB(t)
	serve := startProc(t, "serve", d.url, nil, "serve")
	c := newClient(t, serve.Addr())
	accounts := c.createAccounts(ctx, 1)
	d.waitProvisioned(ctx, t, len(accounts))
	const stored = 60_000
	// Processed history, stored directly: one event in a hundred matches.
	if _, err := d.pool.Exec(ctx, `
		INSERT INTO events (id, account_id, type, payload, occurred_at, status, processed_at)
		SELECT CAST(encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
				placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
				52, 1), 53, 1), 'hex') AS uuid),
			$1, 'won', jsonb_build_object('amount', i), now() - interval '1 hour', 'processed', now()
		FROM generate_series(1, $2) i`, accounts[0], stored); err != nil {
		t.Fatal(err)
	}
	ruleIDs := c.createRules(ctx, rule{Name: "every hundredth", EventTypes: []string{"won"},
		Condition: "int(event.payload.amount) % 100 == 0",
		Actions:   []map[string]any{{"type": "emit_event", "event_type": "hundredth", "payload": map[string]any{}}}})
	var bf backfillState
	c.mustDo(ctx, http.MethodPost, "/v1/rules/"+ruleIDs[0]+"/backfills",
		map[string]any{"from": time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339), "mode": "apply"}, &bf, http.StatusAccepted)

	read := func() backfillState {
		var st backfillState
		c.mustDo(ctx, http.MethodGet, "/v1/backfills/"+bf.ID, nil, &st, http.StatusOK)
		return st
	}
	for st := read(); st.Progress.Pages < 3; st = read() {
		if st.State != "pending" && st.State != "running" {
			t.Fatalf("the backfill finished (%s) before it could be interrupted: raise the events stored", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	serve.kill()
	var pagesAtKill int
	if err := d.pool.QueryRow(ctx, `SELECT pages FROM backfills WHERE id = $1`, bf.ID).Scan(&pagesAtKill); err != nil {
		t.Fatal(err)
	}
	serve.start()
	c.setAddr(serve.Addr())
	t.Logf("killed serve with SIGKILL after %d of %d pages", pagesAtKill, stored/2000)

	deadline := time.Now().Add(recoveryBound)
	st := read()
	for st.State == "pending" || st.State == "running" {
		if time.Now().After(deadline) {
			t.Fatalf("the backfill is still %s %s after the restart, at page %d", st.State, recoveryBound, st.Progress.Pages)
		}
		time.Sleep(200 * time.Millisecond)
		st = read()
	}
	if st.State != "succeeded" {
		t.Fatalf("the backfill ended %s", st.State)
	}
	if st.Progress.EventsEvaluated != stored || st.Progress.EventsMatched != stored/100 {
		t.Errorf("progress: %d evaluated and %d matched, want %d and %d", st.Progress.EventsEvaluated, st.Progress.EventsMatched, stored, stored/100)
	}
	var evaluated, distinct, followUps, followedUp int
	if err := d.pool.QueryRow(ctx, `
		SELECT count(*), count(DISTINCT event_id) FROM evaluations WHERE backfill_id = $1`, bf.ID).Scan(&evaluated, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := d.pool.QueryRow(ctx, `
		SELECT count(*), count(DISTINCT causation_id) FROM events WHERE type = 'hundredth'`).Scan(&followUps, &followedUp); err != nil {
		t.Fatal(err)
	}
	if evaluated != stored || distinct != stored {
		t.Errorf("%d evaluations of %d events, want one of each of %d", evaluated, distinct, stored)
	}
	if followUps != stored/100 || followedUp != stored/100 {
		t.Errorf("%d follow-up events of %d events, want one of each of %d", followUps, followedUp, stored/100)
	}
	checkDiscarded(ctx, t, d)
}
