package ctrader_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/sdk/go/ctrader"
)

// The README's walkthrough: a big win makes John Doe a VIP.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := ctrader.New(serverURL, ctrader.WithBearerToken(token))
	if err != nil {
		log.Fatal(err)
	}

	// 1. An account. It starts pending; the account worker provisions it.
	created, err := c.CreateAccountWithResponse(ctx, ctrader.CreateAccountInputBody{Name: "John Doe"})
	if err != nil {
		log.Fatal(err)
	}
	account := created.JSON201
	fmt.Println("account:", account.Name, account.Status)

	// 2. A rule: a won deal over 1000 emits a vip_candidate event and makes
	// the account vip.
	rule, err := c.CreateRuleWithResponse(ctx, ctrader.CreateRuleInputBody{
		Name:       "big win",
		EventTypes: []string{"won"},
		Condition:  "event.payload.amount > 1000",
		Actions: []ctrader.RuleAction{
			{Type: ctrader.RuleActionTypeEmitEvent, EventType: new("vip_candidate"), Payload: map[string]any{"reason": "big win"}},
			{Type: ctrader.RuleActionTypeSetAccountStatus, Status: new("vip")},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rule:", rule.JSON201.Name, "version", rule.JSON201.Version)

	// 3. A won event of 1500. The answer is 202 with status pending. The
	// Idempotency-Key makes the post safe to retry.
	posted, err := c.CreateEventWithResponse(ctx, nil, ctrader.EventInput{
		AccountID: account.ID,
		Type:      "won",
		Payload:   map[string]any{"amount": 1500},
	}, ctrader.WithIdempotencyKey(rand.Text()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("event:", posted.JSON202.Type, posted.JSON202.Status)

	// 4. Soon the event is processed, with its evaluation: matched, two
	// actions.
	event, err := c.WaitForEvent(ctx, posted.JSON202.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("event:", event.Type, event.Status)
	for _, e := range event.Evaluations {
		fmt.Println("evaluation: matched", e.Matched, "trigger", e.Trigger, "rule version", e.RuleVersion)
		for _, a := range e.Actions {
			switch a.Type {
			case "emit_event":
				fmt.Println("  emitted", *a.EventType)
			case "set_account_status":
				fmt.Println("  status", *a.Status)
			}
		}
	}

	// 5. The follow-up event: caused by the won event, one level deeper.
	followUps, err := c.ListEventsWithResponse(ctx, &ctrader.ListEventsParams{AccountID: &account.ID, Type: new("vip_candidate")})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range followUps.JSON200.Items {
		fmt.Println("follow-up:", f.Type, "depth", f.Depth, "caused by the won event:", *f.CausationID == posted.JSON202.ID)
	}

	// 6. The account: vip, one won deal, 1500 won in all.
	got, err := c.GetAccountWithResponse(ctx, account.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("account:", got.JSON200.Status, got.JSON200.WonCount, got.JSON200.WonTotal)

	// Deleting the rule disables it and keeps it with its evaluations.
	if _, err := c.DeleteRuleWithResponse(ctx, rule.JSON201.ID); err != nil {
		log.Fatal(err)
	}

	// Output:
	// account: John Doe pending
	// rule: big win version 1
	// event: won pending
	// event: won processed
	// evaluation: matched true trigger event rule version 1
	//   emitted vip_candidate
	//   status vip
	// follow-up: vip_candidate depth 1 caused by the won event: true
	// account: vip 1 1500
}

// A request the server refuses comes back as a *ProblemError, with one entry
// per bad field.
func ExampleProblemError() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := ctrader.New(serverURL, ctrader.WithBearerToken(token))
	if err != nil {
		log.Fatal(err)
	}

	// A condition with a typo: there is no event.tpye.
	_, err = c.CreateRuleWithResponse(ctx, ctrader.CreateRuleInputBody{
		Name:      "typo",
		Condition: "event.tpye == 'won'",
	})
	var problem *ctrader.ProblemError
	if errors.As(err, &problem) {
		fmt.Println(problem.Status, problem.Code, problem.Detail)
		for _, e := range problem.Errors {
			fmt.Println(e.Location)
		}
	}

	// An account that does not exist.
	_, err = c.GetAccountWithResponse(ctx, uuid.Must(uuid.NewV7()))
	if errors.As(err, &problem) {
		fmt.Println(problem.Status, problem.Code, problem.Detail)
	}

	// Output:
	// 422 invalid invalid rule
	// body.condition
	// 404 not_found account not found
}

// A retry with the same Idempotency-Key gets the first answer and creates
// nothing.
func ExampleWithIdempotencyKey() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := ctrader.New(serverURL, ctrader.WithBearerToken(token))
	if err != nil {
		log.Fatal(err)
	}
	created, err := c.CreateAccountWithResponse(ctx, ctrader.CreateAccountInputBody{Name: "Jane Roe"})
	if err != nil {
		log.Fatal(err)
	}

	deposit := ctrader.EventInput{AccountID: created.JSON201.ID, Type: "deposit", Payload: map[string]any{"amount": 250}}
	key := rand.Text() // one key per event, kept for its retries
	first, err := c.CreateEventWithResponse(ctx, nil, deposit, ctrader.WithIdempotencyKey(key))
	if err != nil {
		log.Fatal(err)
	}
	retry, err := c.CreateEventWithResponse(ctx, nil, deposit, ctrader.WithIdempotencyKey(key))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first replayed:", ctrader.Replayed(first.HTTPResponse))
	fmt.Println("retry replayed:", ctrader.Replayed(retry.HTTPResponse))
	fmt.Println("same event:", retry.JSON202.ID == first.JSON202.ID)

	// Output:
	// first replayed: false
	// retry replayed: true
	// same event: true
}
