package db

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/page"
)

// Wrap prepares a data function's error for its caller: pgx.ErrNoRows becomes
// notFound, errors Translate recognises become application errors, and any
// other error is wrapped with the action that failed.
func Wrap(action string, err error, notFound error) error {
	if notFound != nil && errors.Is(err, pgx.ErrNoRows) {
		return notFound
	}
	err = Translate(err)
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("%s: %w", action, err)
}

// Conditions collects the optional conditions of a list query, each with one
// numbered parameter.
type Conditions struct {
	where []string
	args  []any
}

// Add appends a condition; cond has one %d where the parameter's number goes,
// as in "account_id = $%d".
func (c *Conditions) Add(cond string, arg any) {
	c.args = append(c.args, arg)
	c.where = append(c.where, fmt.Sprintf(cond, len(c.args)))
}

// AddFixed appends a condition without a parameter.
func (c *Conditions) AddFixed(cond string) {
	c.where = append(c.where, cond)
}

// Where returns the conditions as a WHERE clause (empty for none), with
// their arguments.
func (c Conditions) Where() (string, []any) {
	if len(c.where) == 0 {
		return "", c.args
	}
	return " WHERE " + strings.Join(c.where, " AND "), c.args
}

// Page completes "SELECT … FROM table" into a keyset query for one page,
// newest first: rows with id below p.After, ordered by id descending, one
// more than p.Limit so the caller can tell whether another page follows.
func (c Conditions) Page(selectFrom string, p page.Params) (string, []any) {
	if p.After != uuid.Nil {
		c.Add("id < $%d", p.After)
	}
	query := selectFrom
	if len(c.where) > 0 {
		query += " WHERE " + strings.Join(c.where, " AND ")
	}
	args := append(c.args, p.Limit+1)
	return query + fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args)), args
}

// Subquery is a SELECT of one column, with its arguments, that another
// package's statement embeds: it lets a package pick its own rows by values
// held in a table it does not own, in one statement, while each package
// writes SQL for its own tables only. Its parameters are numbered from $1,
// so the statement that embeds it takes no arguments of its own.
type Subquery struct {
	SQL  string
	Args []any
}
