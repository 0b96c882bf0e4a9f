package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/account"
)

// Prefill is what the pre-fill found and added: processed won events and
// their evaluations on accounts and rules of its own, so that runs measure
// against a large database.
type Prefill struct {
	Accounts          int     `json:"accounts"`
	Rules             int     `json:"rules"`
	EventsBefore      int64   `json:"events_before"`
	EvaluationsBefore int64   `json:"evaluations_before"`
	EventsAdded       int64   `json:"events_added"`
	EvaluationsAdded  int64   `json:"evaluations_added"`
	Seconds           float64 `json:"seconds"`
	VacuumSeconds     float64 `json:"vacuum_seconds,omitempty"`
}

const (
	// prefillAccounts is how many accounts the pre-fill spreads its events over.
	prefillAccounts = 1000
	// prefillChunk is how many events one pre-fill transaction adds.
	prefillChunk = 50_000
	// prefillSpan is how far back the pre-filled events were received.
	prefillSpan = 90 * 24 * time.Hour
	// prefillRulePrefix names the pre-fill's rules, which are disabled: no
	// run's event is evaluated against them.
	prefillRulePrefix = "bench-prefill-"
	// Bytes a stored event and a stored evaluation take with their
	// indexes, as measured on a database of a million of each.
	eventBytes      = 450
	evaluationBytes = 400
)

// uuid7SQL makes a UUIDv7, as ctrader's ids are, for the time t: the
// milliseconds of t over the first 48 bits of a random uuid, and version 7.
func uuid7SQL(t string) string {
	return `CAST(encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing substring(int8send(CAST(floor(extract(epoch FROM ` + t +
		`) * 1000) AS bigint)) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex') AS uuid)`
}

// prefillSQL adds $5 processed won events, received from $7 on, $8 seconds
// apart, at positions $4 onwards of the fill, each with its share of $6
// evaluations (rule k of $2 with threshold $3[k]), and adds their amounts to
// their accounts' totals. Its row count is the evaluations added.
var prefillSQL = `
WITH src AS MATERIALIZED (
	SELECT p - $4 AS q, a.account_id, a.t, a.amount, ` + uuid7SQL("a.t") + ` AS id
	FROM generate_series($4::bigint, $4 + $5 - 1) AS p,
	LATERAL (SELECT ($1::uuid[])[1 + floor(random() * cardinality($1::uuid[]))::int] AS account_id,
	                $7::timestamptz + p * $8::float8 * interval '1 second' AS t,
	                1 + floor(random() * 2000)::int AS amount) AS a
), added AS (
	INSERT INTO events (id, account_id, type, payload, occurred_at, received_at, status, processed_at, won_applied_at)
	SELECT id, account_id, 'won',
	       jsonb_build_object('amount', amount, 'currency', 'EUR', 'game', (ARRAY['poker', 'slots', 'roulette', 'blackjack'])[1 + q % 4],
	                          'table', 'T-' || (q % 97), 'round_id', md5(id::text)),
	       t - random() * interval '2 seconds', t, 'processed', t + interval '12 ms', t + interval '12 ms'
	FROM src
), totals AS (
	UPDATE accounts a SET won_count = a.won_count + s.n, won_total = a.won_total + s.total
	FROM (SELECT account_id, count(*) AS n, sum(amount) AS total FROM src GROUP BY account_id) s
	WHERE a.id = s.account_id
)
INSERT INTO evaluations (id, rule_id, rule_version, account_id, event_id, trigger, matched, actions, started_at, evaluated_at)
SELECT ` + uuid7SQL("src.t + interval '10 ms'") + `, ($2::uuid[])[k], 1, account_id, id, 'event', amount > ($3::int[])[k], '[]',
       src.t + interval '8 ms', src.t + interval '10 ms'
FROM src, generate_series(1, ((q + 1) * $6::bigint / $5 - q * $6::bigint / $5)::int) AS k`

// prefill adds processed history until the pre-fill's accounts hold
// o.PrefillEvents events and o.PrefillEvaluations evaluations. The counts
// so far are kept in the metadata of its first account and updated in the
// transaction of each chunk, so an interrupted pre-fill resumes where it
// stopped and a repeated one adds only the difference.
func (r *runner) prefill(ctx context.Context) (*Prefill, error) {
	began := time.Now()
	accounts, have, err := prefillAccountSet(ctx, r.pool)
	if err != nil {
		return nil, err
	}
	p := &Prefill{Accounts: len(accounts), EventsBefore: have.events, EvaluationsBefore: have.evaluations}
	wantE, wantM := r.o.PrefillEvents, r.o.PrefillEvaluations
	if have.events >= wantE {
		if have.evaluations < wantM {
			r.note("the pre-fill holds %d events already: evaluations come with new events, so it still has %d of the %d asked for",
				have.events, have.evaluations, wantM)
		}
		p.Rules, err = countPrefillRules(ctx, r.pool)
		p.Seconds = time.Since(began).Seconds()
		r.log.Info("pre-fill: already in place", slog.Int64("events", have.events), slog.Int64("evaluations", have.evaluations))
		return p, err
	}
	addE, addM := wantE-have.events, max(wantM-have.evaluations, 0)
	r.log.Info("pre-fill: adding processed events and evaluations",
		slog.Int64("events_before", have.events), slog.Int64("evaluations_before", have.evaluations),
		slog.Int64("events_to_add", addE), slog.Int64("evaluations_to_add", addM),
		slog.Int64("about_mb", (addE*eventBytes+addM*evaluationBytes)>>20))

	// The rows reference only rows the pre-fill made or read, so a
	// superuser may skip the foreign-key triggers, which otherwise make
	// four lookups for every event and its evaluations.
	var superuser bool
	if err := r.pool.QueryRow(ctx, `SELECT current_setting('is_superuser') = 'on'`).Scan(&superuser); err != nil {
		return nil, fmt.Errorf("read the role: %w", err)
	}
	from := time.Now().Add(-prefillSpan)
	step := (prefillSpan - time.Hour).Seconds() / float64(addE)
	lastLog := time.Now()
	for pos := int64(0); pos < addE; {
		n := min(prefillChunk, addE-pos)
		// The chunk's share of the evaluations, so that the last chunk
		// brings the total to exactly addM.
		chunkM := (pos+n)*addM/addE - pos*addM/addE
		rules, err := prefillRules(ctx, r.pool, int((chunkM+n-1)/n))
		if err != nil {
			return p, err
		}
		p.Rules = max(p.Rules, len(rules))
		thresholds := make([]int32, len(rules))
		for k := range thresholds {
			thresholds[k] = prefillThreshold(k)
		}
		err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			if superuser {
				if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
					return fmt.Errorf("skip foreign-key triggers: %w", err)
				}
			}
			tag, err := tx.Exec(ctx, prefillSQL, accounts, rules, thresholds, pos, n, chunkM, from, step)
			if err != nil {
				return fmt.Errorf("add pre-fill events: %w", err)
			}
			if tag.RowsAffected() != chunkM {
				return fmt.Errorf("add pre-fill events: %d evaluations added, want %d", tag.RowsAffected(), chunkM)
			}
			_, err = tx.Exec(ctx, `
				UPDATE accounts SET metadata = metadata || jsonb_build_object('prefill_events', $2::bigint, 'prefill_evaluations', $3::bigint)
				WHERE id = $1`, accounts[0], have.events+n, have.evaluations+chunkM)
			if err != nil {
				return fmt.Errorf("count the pre-fill: %w", err)
			}
			return nil
		})
		if err != nil {
			p.Seconds = time.Since(began).Seconds()
			return p, err
		}
		have.events += n
		have.evaluations += chunkM
		p.EventsAdded += n
		p.EvaluationsAdded += chunkM
		pos += n
		if time.Since(lastLog) >= 5*time.Second || pos == addE {
			elapsed := time.Since(began)
			r.log.Info("pre-fill", slog.Int64("events", have.events), slog.Int64("of_events", wantE),
				slog.Int64("evaluations", have.evaluations),
				slog.Float64("events_per_second", math.Round(perSecond(int(p.EventsAdded), elapsed.Seconds()))),
				slog.Duration("left", time.Duration(float64(elapsed)*float64(addE-pos)/float64(pos)).Round(time.Second)))
			lastLog = time.Now()
		}
	}
	r.log.Info("pre-fill: vacuuming and analyzing the tables")
	vacuumed := time.Now()
	if _, err := r.pool.Exec(ctx, `VACUUM (ANALYZE) events, evaluations, accounts`); err != nil {
		r.note("the pre-fill's VACUUM (ANALYZE) failed: %v", err)
	}
	p.VacuumSeconds = time.Since(vacuumed).Seconds()
	p.Seconds = time.Since(began).Seconds()
	return p, nil
}

type prefillCounts struct{ events, evaluations int64 }

// prefillAccountSet returns the pre-fill's accounts, the first holding the
// counts, creating them on the first pre-fill.
func prefillAccountSet(ctx context.Context, pool *pgxpool.Pool) ([]uuid.UUID, prefillCounts, error) {
	var have prefillCounts
	rows, err := pool.Query(ctx, `
		SELECT id, coalesce((metadata->>'prefill_events')::bigint, 0), coalesce((metadata->>'prefill_evaluations')::bigint, 0)
		FROM accounts WHERE metadata @> '{"bench_prefill": true}' ORDER BY name`)
	if err != nil {
		return nil, have, fmt.Errorf("read the pre-fill's accounts: %w", err)
	}
	var (
		ids    []uuid.UUID
		id     uuid.UUID
		e, m   int64
		marked bool
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &e, &m}, func() error {
		if !marked {
			have, marked = prefillCounts{events: e, evaluations: m}, true
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, have, fmt.Errorf("read the pre-fill's accounts: %w", err)
	}
	if len(ids) > 0 {
		return ids, have, nil
	}
	ins := make([]account.CreateInput, prefillAccounts)
	for i := range ins {
		ins[i] = account.CreateInput{Name: fmt.Sprintf("bench prefill %04d", i), Metadata: map[string]any{"bench_prefill": true}}
	}
	ids, err = account.CopyActive(ctx, pool, ins)
	if err != nil {
		return nil, have, fmt.Errorf("create the pre-fill's accounts: %w", err)
	}
	return ids, have, nil
}

// prefillThreshold is the amount the k-th pre-fill rule's condition tests.
func prefillThreshold(k int) int32 { return int32(250 * (1 + k%7)) }

func countPrefillRules(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM rules WHERE name LIKE $1 || '%' AND deleted_at IS NULL`, prefillRulePrefix).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count the pre-fill's rules: %w", err)
	}
	return n, nil
}

// maxPrefillRules bounds the evaluations per pre-filled event: one per rule.
const maxPrefillRules = 100

// prefillRules returns at least n of the pre-fill's rules, in order,
// creating the missing ones disabled, with their first version.
func prefillRules(ctx context.Context, pool *pgxpool.Pool, n int) ([]uuid.UUID, error) {
	if n > maxPrefillRules {
		return nil, errors.New("the pre-fill makes at most 100 evaluations per event")
	}
	var ids []uuid.UUID
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM rules WHERE name LIKE $1 || '%' AND deleted_at IS NULL ORDER BY name`, prefillRulePrefix)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return err
		}
		for k := len(ids); k < n; k++ {
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `
				WITH r AS (
					INSERT INTO rules (id, name, description, event_types, condition, enabled)
					VALUES ($1, $2, 'history written by ctrader bench --prefill-events', '{won}', $3, false)
					RETURNING *
				)
				INSERT INTO rule_versions (rule_id, version, name, description, event_types, scheduled, condition, actions, enabled)
				SELECT id, version, name, description, event_types, scheduled, condition, actions, enabled FROM r`,
				id, fmt.Sprintf("%s%03d", prefillRulePrefix, k), fmt.Sprintf("event.payload.amount > %d", prefillThreshold(k)))
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create the pre-fill's rules: %w", err)
	}
	return ids, nil
}
