package engine_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/partition"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

type testBundle struct {
	pool     *pgxpool.Pool
	client   *river.Client[pgx.Tx] // inserts only
	engine   *engine.Engine
	accounts *account.Service
	rules    *rule.Service
	events   *event.Service
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: dbtest.Logger(t)})
	require.NoError(t, err)
	compiler, err := rule.NewCompiler()
	require.NoError(t, err)
	return &testBundle{
		pool:     pool,
		client:   client,
		engine:   engine.New(compiler, engine.DefaultMaxDepth, dbtest.Logger(t)),
		accounts: account.NewService(pool, client),
		rules:    rule.NewService(pool, compiler, webhook.Referable),
		events:   event.NewService(pool, client),
	}
}

// activeAccount creates an account and activates it, as its provisioning job
// does.
func (b *testBundle) activeAccount(t *testing.T) *account.Account {
	t.Helper()
	ctx := context.Background()
	a, err := b.accounts.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	activated, err := account.Activate(ctx, b.pool, a.ID)
	require.NoError(t, err)
	require.True(t, activated)
	return a
}

func (b *testBundle) createRule(t *testing.T, in rule.Input) *rule.Rule {
	t.Helper()
	in.Enabled = true
	r, err := b.rules.Create(context.Background(), in)
	require.NoError(t, err)
	return r
}

func (b *testBundle) ingest(t *testing.T, accountID uuid.UUID, eventType string, payload map[string]any) *event.Event {
	t.Helper()
	evs, _, err := b.events.Ingest(context.Background(),
		[]event.Input{{AccountID: accountID, Type: eventType, Payload: payload}},
		func(int) string { return "body" }, nil)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	return evs[0]
}

// process runs ProcessEvents over ids in a transaction of its own.
func (b *testBundle) process(t *testing.T, ids ...uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, db.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		return b.engine.ProcessEvents(ctx, tx, b.client, ids)
	}))
}

// queued reports whether a job that processes the event was inserted.
func (b *testBundle) queued(t *testing.T, eventID uuid.UUID) bool {
	t.Helper()
	res, err := b.client.JobList(context.Background(), river.NewJobListParams().Kinds(jobs.EventsProcess{}.Kind()))
	require.NoError(t, err)
	for _, row := range res.Jobs {
		var args jobs.EventsProcess
		require.NoError(t, json.Unmarshal(row.EncodedArgs, &args))
		if slices.Contains(args.EventIDs, eventID) {
			return true
		}
	}
	return false
}

func (b *testBundle) evaluations(t *testing.T, eventID uuid.UUID) []*evaluation.Evaluation {
	t.Helper()
	evals, err := evaluation.ForEvent(context.Background(), b.pool, eventID)
	require.NoError(t, err)
	return evals
}

func TestProcessEventsTwiceActsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	first := b.createRule(t, rule.Input{Name: "any win", EventTypes: []string{event.TypeWon}, Condition: `true`})
	second := b.createRule(t, rule.Input{Name: "big win", EventTypes: []string{event.TypeWon},
		Condition: `event.payload.amount > 1000`})
	cond := `event.payload.amount > 100`
	_, err := b.rules.Update(ctx, second.ID, rule.Patch{Condition: &cond})
	require.NoError(t, err)
	ev := b.ingest(t, a.ID, event.TypeWon, map[string]any{"amount": 250.5})

	b.process(t, ev.ID)
	b.process(t, ev.ID)

	got, err := b.accounts.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), got.WonCount, "the amount is added once")
	require.Equal(t, "250.5", got.WonTotal.String())
	versions := map[uuid.UUID]int{}
	for _, e := range b.evaluations(t, ev.ID) {
		_, seen := versions[e.RuleID]
		require.False(t, seen, "one evaluation per rule")
		versions[e.RuleID] = e.RuleVersion
		require.True(t, e.Matched)
	}
	require.Equal(t, map[uuid.UUID]int{first.ID: 1, second.ID: 2}, versions, "the version current when evaluated")
	processed, err := b.events.Get(ctx, ev.ID)
	require.NoError(t, err)
	require.Equal(t, event.StatusProcessed, processed.Status)
}

// A follow-up event names the event that caused it and the posted event its
// chain started from, one level deeper at every step.
func TestFollowUpsNameTheirCauseAndRoot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	emit := func(from, to string) {
		b.createRule(t, rule.Input{Name: from + " to " + to, EventTypes: []string{from}, Condition: `true`,
			Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: to, Payload: map[string]any{}}}})
	}
	emit("ping", "pong")
	emit("pong", "pang")
	root := b.ingest(t, a.ID, "ping", map[string]any{})

	// followUp processes src and returns the event its one rule emitted.
	followUp := func(src uuid.UUID) *event.Event {
		t.Helper()
		b.process(t, src)
		evals := b.evaluations(t, src)
		require.Len(t, evals, 1)
		require.Len(t, evals[0].Actions, 1)
		require.NotNil(t, evals[0].Actions[0].EventID)
		ev, err := b.events.Get(ctx, *evals[0].Actions[0].EventID)
		require.NoError(t, err)
		require.True(t, b.queued(t, ev.ID), "the follow-up has its own job")
		return ev
	}
	// rootOf reads what the event package keeps to itself.
	rootOf := func(id uuid.UUID) *uuid.UUID {
		t.Helper()
		var rootID *uuid.UUID
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT root_id FROM events WHERE id = $1`, id).Scan(&rootID))
		return rootID
	}

	require.Nil(t, rootOf(root.ID), "a posted event is its own root")
	pong := followUp(root.ID)
	require.Equal(t, "pong", pong.Type)
	require.Equal(t, &root.ID, pong.CausationID)
	require.Equal(t, &root.ID, rootOf(pong.ID))
	require.Equal(t, 1, pong.Depth)

	pang := followUp(pong.ID)
	require.Equal(t, "pang", pang.Type)
	require.Equal(t, &pong.ID, pang.CausationID)
	require.Equal(t, &root.ID, rootOf(pang.ID), "the root of the chain, not the cause")
	require.Equal(t, 2, pang.Depth)
}

func TestManualRefusesWhatCannotBeEvaluated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	manual := engine.NewManual(b.pool, b.client)
	named := func(name string) rule.Input {
		return rule.Input{Name: name, EventTypes: []string{"never"}, Condition: `true`}
	}

	disabled := b.createRule(t, named("disabled"))
	off := false
	_, err := b.rules.Update(ctx, disabled.ID, rule.Patch{Enabled: &off})
	require.NoError(t, err)
	deleted := b.createRule(t, named("deleted"))
	require.NoError(t, b.rules.Delete(ctx, deleted.ID))
	enabled := b.createRule(t, named("enabled"))

	for _, tc := range []struct {
		name    string
		ruleID  uuid.UUID
		account uuid.UUID
		want    error
	}{
		{"disabled rule", disabled.ID, a.ID, rule.ErrDisabled},
		{"deleted rule", deleted.ID, a.ID, rule.ErrDeleted},
		{"unknown rule", uuid.New(), a.ID, rule.ErrNotFound},
		{"unknown account", enabled.ID, uuid.New(), engine.ErrUnknownAccount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, err := manual.EvaluateNow(ctx, tc.ruleID, tc.account)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, run)
		})
	}
	driver := riverpgxv5.New(b.pool)
	rivertest.RequireNotInserted(ctx, t, driver, jobs.EvaluateAccounts{}, nil)
	rivertest.RequireNotInserted(ctx, t, driver, jobs.RulesFanOut{}, nil)

	// What it accepts, it queues: one account's evaluation, or a fan-out
	// over every account.
	one, err := manual.EvaluateNow(ctx, enabled.ID, a.ID)
	require.NoError(t, err)
	require.Equal(t, enabled.Version, one.RuleVersion)
	require.Equal(t, jobs.EvaluateAccounts{
		Trigger: evaluation.TriggerManual, RunID: one.RunID, RuleIDs: []uuid.UUID{enabled.ID}, AccountID: a.ID,
	}, rivertest.RequireInserted(ctx, t, driver, jobs.EvaluateAccounts{}, nil).Args)
	all, err := manual.EvaluateNow(ctx, enabled.ID, uuid.Nil)
	require.NoError(t, err)
	require.Equal(t, jobs.RulesFanOut{
		Trigger: evaluation.TriggerManual, RunID: all.RunID, RuleIDs: []uuid.UUID{enabled.ID},
	}, rivertest.RequireInserted(ctx, t, driver, jobs.RulesFanOut{}, nil).Args)
}

// Webhook actions of the events processed together are taken together at
// the end, yet each delivery reports the account as its own event left it,
// and a status change between them is seen by the events after it.
func TestWebhooksOfABatchReportTheAccountAsTheirEventLeftIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	ep, _, err := webhook.NewService(b.pool, nil, 0).Create(ctx, webhook.Input{URL: "https://example.com/hook", Enabled: true})
	require.NoError(t, err)
	b.createRule(t, rule.Input{Name: "tell", EventTypes: []string{event.TypeWon}, Condition: `true`,
		Actions: []rule.Action{{Type: rule.ActionWebhook, EndpointID: ep.ID.String()}}})
	b.createRule(t, rule.Input{Name: "vip on the second", EventTypes: []string{event.TypeWon}, Condition: `account.won_count == 2`,
		Actions: []rule.Action{{Type: rule.ActionSetAccountStatus, Status: "vip"}}})
	var ids []uuid.UUID
	for _, amount := range []string{"10", "20", "30"} {
		ids = append(ids, b.ingest(t, a.ID, event.TypeWon, map[string]any{"amount": json.Number(amount)}).ID)
	}

	b.process(t, ids...)

	rows, err := b.pool.Query(ctx, `
		SELECT convert_from(d.body, 'UTF8')::jsonb->'data'->'account'->>'won_count', convert_from(d.body, 'UTF8')::jsonb->'data'->'account'->>'status'
		FROM webhook_deliveries d JOIN evaluations e ON e.id = d.evaluation_id
		ORDER BY e.event_id`)
	require.NoError(t, err)
	type seen struct{ count, status string }
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seen, error) {
		var s seen
		return s, r.Scan(&s.count, &s.status)
	})
	require.NoError(t, err)
	// The second event's webhook rule comes before its status rule: it reports
	// the status before the change, as actions are taken in order.
	require.Equal(t, []seen{{"1", "active"}, {"2", "active"}, {"3", "vip"}}, got)
	// Each store of the batch queues its deliveries together: the second
	// event's status rule stores its evaluations at once, the rest at the end.
	var queued, deliveries int
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT count(*), sum(CASE WHEN kind = $1 THEN jsonb_array_length(args->'delivery_ids') ELSE 1 END)
		FROM river_job WHERE kind IN ($1, $2)`, jobs.WebhookDeliverBatch{}.Kind(), jobs.WebhookDeliver{}.Kind()).Scan(&queued, &deliveries))
	require.Equal(t, 3, deliveries)
	require.Equal(t, 2, queued)
}

// A test of a stored rule foresees what processing its event then does: the
// same outcome, follow-up payload, status change and webhook body, through
// the same code, while writing nothing itself.
func TestTesterForeseesWhatProcessingDoes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	ep, _, err := webhook.NewService(b.pool, nil, 0).Create(ctx, webhook.Input{URL: "https://example.com/hook", Enabled: true})
	require.NoError(t, err)
	r := b.createRule(t, rule.Input{Name: "big win", EventTypes: []string{event.TypeWon}, Condition: `event.payload.amount > 1000`,
		Actions: []rule.Action{
			{Type: rule.ActionEmitEvent, EventType: "vip_candidate", PayloadExpr: `{'amount': event.payload.amount, 'count': account.won_count}`},
			{Type: rule.ActionSetAccountStatus, Status: "vip"},
			{Type: rule.ActionWebhook, EndpointID: ep.ID.String()},
		}})
	ev := b.ingest(t, a.ID, event.TypeWon, map[string]any{"amount": json.Number("1500")})

	res, err := engine.NewTester(b.pool, b.engine).Stored(ctx, r.ID, 0, engine.Sample{EventID: ev.ID})
	require.NoError(t, err)
	require.Empty(t, b.evaluations(t, ev.ID), "the test recorded nothing")
	b.process(t, ev.ID)

	evals := b.evaluations(t, ev.ID)
	require.Len(t, evals, 1)
	live := evals[0]
	require.True(t, live.Matched)
	require.Equal(t, live.Matched, res.Evaluation.Matched)
	require.Equal(t, live.DepthLimited, res.Evaluation.DepthLimited)
	require.Len(t, res.Evaluation.Actions, len(live.Actions))
	for i, want := range live.Actions {
		got := res.Evaluation.Actions[i]
		want.EventID, got.EventID, want.DeliveryID, got.DeliveryID = nil, nil, nil, nil
		require.Equal(t, want, got, "action %d", i)
	}

	followUp, err := b.events.Get(ctx, *live.Actions[0].EventID)
	require.NoError(t, err)
	// The stored payload is read back as JSON; the rendered one has not been
	// through it yet.
	stored, err := json.Marshal(followUp.Payload)
	require.NoError(t, err)
	rendered, err := json.Marshal(res.Actions[0].Event.Payload)
	require.NoError(t, err)
	require.JSONEq(t, string(stored), string(rendered))
	require.Equal(t, followUp.Depth, res.Actions[0].Event.Depth)
	require.Equal(t, followUp.CausationID, res.Actions[0].Event.CausationID)

	var sent []byte
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT body FROM webhook_deliveries WHERE id = $1`, *live.Actions[2].DeliveryID).Scan(&sent))
	// Ids and times are the run's own; everything else is the same.
	withoutRunValues := func(body []byte) map[string]any {
		t.Helper()
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m), string(body))
		delete(m, "timestamp")
		evaluation := m["data"].(map[string]any)["evaluation"].(map[string]any)
		delete(evaluation, "id")
		delete(evaluation, "evaluated_at")
		return m
	}
	require.Equal(t, withoutRunValues(sent), withoutRunValues(res.Actions[2].Body))
	require.Equal(t, ep.ID, res.Actions[2].Endpoint.ID)
}

// An evaluation's id is derived from what it evaluates: evaluating the same
// rule version against the same event again (its status lost, say) records
// nothing new and takes no action twice, and the evaluation lives in the
// event's time partition.
func TestEvaluationIDsMakeEvaluationOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	r := b.createRule(t, rule.Input{Name: "echo", EventTypes: []string{"ping"}, Condition: `true`,
		Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: "pong", Payload: map[string]any{}}}})
	ev := b.ingest(t, a.ID, "ping", map[string]any{})

	b.process(t, ev.ID)
	_, err := b.pool.Exec(ctx, `UPDATE events SET status = 'pending' WHERE id = $1`, ev.ID)
	require.NoError(t, err)
	b.process(t, ev.ID)

	evals := b.evaluations(t, ev.ID)
	require.Len(t, evals, 1)
	require.Equal(t, evaluation.EventID(ev.ID, r.ID, r.Version), evals[0].ID)
	require.Equal(t, partition.TimeOf(ev.ID), partition.TimeOf(evals[0].ID), "in the event's partition")
	var pongs int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'pong'`).Scan(&pongs))
	require.Equal(t, 1, pongs, "the action was taken once")

	// The same holds for a run: a window or manual run evaluated twice.
	s := b.createRule(t, rule.Input{Name: "tick", Scheduled: true, Condition: `true`,
		Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: "tock", Payload: map[string]any{}}}})
	args := jobs.EvaluateAccounts{Trigger: evaluation.TriggerSchedule, RunID: "schedule:2026-01-05T10:00:00Z",
		RuleIDs: []uuid.UUID{s.ID}, AccountID: a.ID}
	for range 2 {
		require.NoError(t, db.InTx(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.engine.EvaluateAccounts(ctx, tx, b.client, args)
			return err
		}))
	}
	var runs, tocks int
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM evaluations WHERE run_id = $1), (SELECT count(*) FROM events WHERE type = 'tock')`,
		args.RunID).Scan(&runs, &tocks))
	require.Equal(t, 1, runs)
	require.Equal(t, 1, tocks)
	at, ok := evaluation.RunTime(args.RunID)
	require.True(t, ok)
	require.Equal(t, partition.Bound(at), partition.Bound(partition.TimeOf(evaluation.RunID(args.RunID, s.ID, s.Version, a.ID))))
}

// An evaluation that acts is stored once, with its actions: no second
// statement rewrites it.
func TestActingEvaluationsAreStoredWithTheirActions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	b.createRule(t, rule.Input{Name: "echo", EventTypes: []string{"ping"}, Condition: `true`,
		Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: "pong", Payload: map[string]any{}}}})
	b.createRule(t, rule.Input{Name: "quiet", EventTypes: []string{"ping"}, Condition: `false`,
		Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: "never", Payload: map[string]any{}}}})
	_, err := b.pool.Exec(ctx, `
		CREATE TABLE evaluation_updates (n int);
		CREATE FUNCTION count_evaluation_updates() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO evaluation_updates VALUES (1); RETURN NULL; END $$;
		CREATE TRIGGER count_evaluation_updates AFTER UPDATE ON evaluations
			FOR EACH STATEMENT EXECUTE FUNCTION count_evaluation_updates();`)
	require.NoError(t, err)
	ev := b.ingest(t, a.ID, "ping", map[string]any{})

	b.process(t, ev.ID)

	evals := b.evaluations(t, ev.ID)
	require.Len(t, evals, 2)
	for _, e := range evals {
		if !e.Matched {
			require.Empty(t, e.Actions)
			continue
		}
		require.Len(t, e.Actions, 1)
		require.Equal(t, rule.ActionEmitEvent, e.Actions[0].Type)
		require.NotNil(t, e.Actions[0].EventID, "names the follow-up")
	}
	var updates int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM evaluation_updates`).Scan(&updates))
	require.Zero(t, updates)
}

// Two transactions that evaluate the same run at once act once between
// them: the second either finds the evaluation recorded, or fails to store
// it with ErrRecordedMeanwhile and rolls its actions back.
func TestAnEvaluationRecordedMeanwhileRollsTheActionsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	s := b.createRule(t, rule.Input{Name: "tick", Scheduled: true, Condition: `true`,
		Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: "tock", Payload: map[string]any{}}}})
	args := jobs.EvaluateAccounts{Trigger: evaluation.TriggerManual, RunID: "manual:" + uuid.NewString(),
		RuleIDs: []uuid.UUID{s.ID}, AccountID: a.ID}

	first, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer first.Rollback(ctx) //nolint:errcheck // committed below
	_, err = b.engine.EvaluateAccounts(ctx, first, b.client, args)
	require.NoError(t, err)

	second := make(chan error, 1)
	go func() {
		second <- db.InTx(ctx, b.pool, func(tx pgx.Tx) error {
			_, err := b.engine.EvaluateAccounts(ctx, tx, b.client, args)
			return err
		})
	}()
	require.Eventually(t, func() bool {
		var waiting int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting > 0
	}, 10*time.Second, 5*time.Millisecond, "the second transaction waits for the first")
	require.NoError(t, first.Commit(ctx))
	if err := <-second; err != nil {
		require.ErrorIs(t, err, evaluation.ErrRecordedMeanwhile)
	}

	var runs, tocks int
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM evaluations WHERE run_id = $1), (SELECT count(*) FROM events WHERE type = 'tock')`,
		args.RunID).Scan(&runs, &tocks))
	require.Equal(t, 1, runs)
	require.Equal(t, 1, tocks, "the action was taken once")
}

// Evaluations name their rule and account without foreign keys, which cost
// a third of their insert: the rows they name cannot be deleted anyway, the
// rule for its versions and the account for its events, and deleting a rule
// through the API keeps its row.
func TestEvaluatedRulesAndAccountsStay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := b.activeAccount(t)
	r := b.createRule(t, rule.Input{Name: "any", EventTypes: []string{event.TypeWon}, Condition: "true"})
	ev := b.ingest(t, a.ID, event.TypeWon, map[string]any{"amount": 250.5})
	b.process(t, ev.ID)
	require.Len(t, b.evaluations(t, ev.ID), 1)

	for _, del := range []struct {
		sql        string
		id         uuid.UUID
		constraint string
	}{
		{`DELETE FROM rules WHERE id = $1`, r.ID, "rule_versions_rule_id_fkey"},
		{`DELETE FROM accounts WHERE id = $1`, a.ID, "events_account_id_fkey"},
	} {
		_, err := b.pool.Exec(ctx, del.sql, del.id)
		code, constraint := db.ConstraintOf(err)
		require.Equal(t, db.CodeForeignKeyViolation, code, del.sql)
		require.Equal(t, del.constraint, constraint, del.sql)
	}

	require.NoError(t, b.rules.Delete(ctx, r.ID))
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM rules WHERE id = $1 AND deleted_at IS NOT NULL`, r.ID).Scan(&n))
	require.Equal(t, 1, n, "a deleted rule keeps its row")
}
