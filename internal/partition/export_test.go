package partition

import "time"

// At makes m take now to be the time f returns.
func (m *Maintainer) At(f func() time.Time) *Maintainer { m.now = f; return m }

// WithLockTimeout bounds m's lock waits by d.
func (m *Maintainer) WithLockTimeout(d time.Duration) *Maintainer { m.lockTimeout = d; return m }

// AfterStep makes m call f after each step that changed something; an error
// from f ends the run.
func (m *Maintainer) AfterStep(f func(step string) error) *Maintainer { m.afterStep = f; return m }
