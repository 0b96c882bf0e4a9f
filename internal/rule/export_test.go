package rule

import "github.com/ctrader/ctrader/internal/apperr"

// Check runs the checks a rule gets when it is written.
func (c *Compiler) Check(condition string, actions []Action) []apperr.FieldError {
	_, fields := c.compile(condition, actions, "body", true)
	return fields
}
