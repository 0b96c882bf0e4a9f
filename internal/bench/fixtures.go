package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// createAccounts creates the run's accounts through the API and waits until
// the account worker has provisioned every one.
func (r *runner) createAccounts(ctx context.Context) ([]uuid.UUID, error) {
	k := r.o.Accounts
	r.log.Info("creating accounts", slog.Int("accounts", k), slog.String("run", r.runID))
	ids := make([]uuid.UUID, k)
	err := work(ctx, min(r.o.Concurrency, k), counter(k), func(int) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			var a struct {
				ID uuid.UUID `json:"id"`
			}
			in := map[string]any{
				"name":     fmt.Sprintf("bench %s %d", r.runID, i),
				"metadata": map[string]any{"bench_run": r.runID},
			}
			if err := r.call(ctx, http.MethodPost, "/v1/accounts", in, &a); err != nil {
				return err
			}
			ids[i] = a.ID
			return nil
		}
	})
	if err != nil {
		return nil, fmt.Errorf("create accounts: %w", err)
	}

	var stored int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE id = ANY($1)`, ids).Scan(&stored); err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	if stored != k {
		return nil, fmt.Errorf("only %d of the %d accounts created through %s are in the database: --database-url must name the server's database", stored, k, r.base)
	}
	var active int
	done, err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		err := r.pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE id = ANY($1) AND activated_at IS NOT NULL`, ids).Scan(&active)
		return active == k, err
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("wait for accounts: %w", err)
	case !done:
		return nil, fmt.Errorf("only %d of %d accounts were provisioned before the timeout: are the server's workers running?", active, k)
	}
	return ids, nil
}

// createRules creates the run's rules: conditions on payload.amount at
// thresholds spread over the amounts posted, so some match and some do not.
// It returns the ids created, also on error, so they can be deleted.
func (r *runner) createRules(ctx context.Context) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, r.o.Rules)
	if r.o.Rules > 0 {
		r.log.Info("creating rules", slog.Int("rules", r.o.Rules))
	}
	for i := range r.o.Rules {
		threshold := (i + 1) * maxAmount / (r.o.Rules + 1)
		actions := []map[string]any{}
		if r.o.RuleActions {
			actions = append(actions, map[string]any{"type": "set_account_status", "status": "vip"})
		}
		id, err := r.createRule(ctx, fmt.Sprintf("bench-%s-%d", r.runID, i), fmt.Sprintf("event.payload.amount > %d", threshold), actions)
		if err != nil {
			return ids, fmt.Errorf("create rules: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// createRule creates one of the run's rules on won events.
func (r *runner) createRule(ctx context.Context, name, condition string, actions []map[string]any) (uuid.UUID, error) {
	in := map[string]any{
		"name":        name,
		"description": "ctrader bench run " + r.runID,
		"event_types": []string{"won"},
		"condition":   condition,
		"actions":     actions,
	}
	var out struct {
		ID uuid.UUID `json:"id"`
	}
	if err := r.call(ctx, http.MethodPost, "/v1/rules", in, &out); err != nil {
		return uuid.Nil, err
	}
	return out.ID, nil
}

// rulesForWon counts the enabled rules a won event is evaluated against, as
// the rules worker selects them.
func (r *runner) rulesForWon(ctx context.Context) (int, error) {
	var n int
	err := r.pool.QueryRow(ctx, `
		SELECT count(*) FROM rules
		WHERE enabled AND deleted_at IS NULL
		  AND ((event_types = '{}' AND NOT scheduled) OR 'won' = ANY (event_types))`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count rules: %w", err)
	}
	return n, nil
}

// deleteRules deletes the run's rules, so that later runs against the same
// database evaluate only their own.
func (r *runner) deleteRules(parent context.Context, ids []uuid.UUID) {
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := r.call(ctx, http.MethodDelete, "/v1/rules/"+id.String(), nil, nil); err != nil {
			r.log.Warn("could not delete a bench rule", slog.String("rule", id.String()), slog.String("error", err.Error()))
		}
	}
}
