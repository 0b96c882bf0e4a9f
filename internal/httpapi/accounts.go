package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/page"
)

// Account is an account as clients see it.
type Account struct {
	ID          string         `json:"id" format:"uuid" doc:"Account id (a UUIDv7: ids sort by creation time)" example:"0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b"`
	Name        string         `json:"name" example:"John Doe"`
	Status      string         `json:"status" doc:"pending until the account job has provisioned it, then active; rules may set other statuses" example:"active"`
	Metadata    map[string]any `json:"metadata" doc:"Free-form JSON object given at creation"`
	WonCount    int64          `json:"won_count" doc:"Number of won events applied to the account"`
	WonTotal    Decimal        `json:"won_total" doc:"Sum of their payload.amount, exactly: written with every digit, never rounded to a float64"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	ActivatedAt *time.Time     `json:"activated_at,omitempty" doc:"When the account was provisioned; absent while pending"`
}

func toAccount(a *account.Account) Account {
	return Account{
		ID:          a.ID.String(),
		Name:        a.Name,
		Status:      a.Status,
		Metadata:    a.Metadata,
		WonCount:    a.WonCount,
		WonTotal:    Decimal{a.WonTotal},
		CreatedAt:   a.CreatedAt,
		UpdatedAt:   a.UpdatedAt,
		ActivatedAt: a.ActivatedAt,
	}
}

var opCreateAccount = huma.Operation{
	OperationID:   "createAccount",
	Method:        http.MethodPost,
	Path:          "/v1/accounts",
	Summary:       "Create an account",
	Description:   "Stores a pending account and, in the same transaction, the job that provisions it. The account turns active when that job has run.",
	Tags:          []string{"accounts"},
	DefaultStatus: http.StatusCreated,
	MaxBodyBytes:  64 * 1024,
	Errors:        []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type createAccountInput struct {
	Body struct {
		Name     string         `json:"name" minLength:"1" maxLength:"200" doc:"Display name; surrounding white space is trimmed" example:"John Doe"`
		Metadata map[string]any `json:"metadata,omitempty" doc:"Free-form JSON object, at most 16 KiB encoded and 32 levels deep"`
	}
}

type createAccountOutput struct {
	Location string `header:"Location" doc:"URL of the new account"`
	Body     Account
}

func (h *handlers) createAccount(ctx context.Context, in *createAccountInput) (*createAccountOutput, error) {
	a, err := h.Accounts.Create(ctx, account.CreateInput{Name: in.Body.Name, Metadata: in.Body.Metadata})
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &createAccountOutput{Location: "/v1/accounts/" + a.ID.String(), Body: toAccount(a)}, nil
}

var opGetAccount = huma.Operation{
	OperationID: "getAccount",
	Method:      http.MethodGet,
	Path:        "/v1/accounts/{id}",
	Summary:     "Get an account",
	Tags:        []string{"accounts"},
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type getAccountInput struct {
	ID string `path:"id" format:"uuid" doc:"Account id"`
}

type accountOutput struct {
	Body Account
}

func (h *handlers) getAccount(ctx context.Context, in *getAccountInput) (*accountOutput, error) {
	id, err := uuid.Parse(in.ID)
	if err != nil {
		return nil, fail(ctx, h.Logger, account.ErrNotFound)
	}
	a, err := h.Accounts.Get(ctx, id)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &accountOutput{Body: toAccount(a)}, nil
}

var opListAccounts = huma.Operation{
	OperationID: "listAccounts",
	Method:      http.MethodGet,
	Path:        "/v1/accounts",
	Summary:     "List accounts",
	Description: "Newest first. Pass next_cursor back as cursor to read the following page; it is absent on the last page.",
	Tags:        []string{"accounts"},
	Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

// PageQuery are the query parameters of every list operation.
type PageQuery struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"Items per page"`
	Cursor string `query:"cursor" maxLength:"128" doc:"next_cursor of the previous page"`
}

func (q PageQuery) params() (page.Params, error) {
	after, err := page.DecodeCursor(q.Cursor)
	if err != nil {
		return page.Params{}, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = page.DefaultLimit
	}
	return page.Params{Limit: limit, After: after}, nil
}

type listAccountsInput struct {
	PageQuery
}

type listAccountsOutput struct {
	Body struct {
		Items      []Account `json:"items"`
		NextCursor string    `json:"next_cursor,omitempty" doc:"Cursor of the next page; absent on the last page"`
	}
}

func (h *handlers) listAccounts(ctx context.Context, in *listAccountsInput) (*listAccountsOutput, error) {
	p, err := in.params()
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	res, err := h.Accounts.List(ctx, p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &listAccountsOutput{}
	out.Body.Items = make([]Account, 0, len(res.Items))
	for _, a := range res.Items {
		out.Body.Items = append(out.Body.Items, toAccount(a))
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}
