package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ctrader/ctrader/internal/queue"
)

// setQueueConcurrency parses QUEUE_CONCURRENCY: queue=number pairs separated
// by commas, each queue one package queue names.
func setQueueConcurrency(c *Config, v string) error {
	c.QueueConcurrency = map[string]int{}
	if strings.TrimSpace(v) == "" {
		return nil
	}
	for _, part := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(part), "=")
		if name == queue.Backfill {
			return fmt.Errorf("set the %s queue's workers with BACKFILL_WORKERS", queue.Backfill)
		}
		if !ok || !slices.Contains(queue.Tunable(), name) {
			return fmt.Errorf("%q is not queue=number with a queue among %s", part, strings.Join(queue.Tunable(), ", "))
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 10_000 {
			return fmt.Errorf("%s: workers must be a whole number from 1 to 10000", name)
		}
		c.QueueConcurrency[name] = n
	}
	return nil
}

// perSecondSetter returns the setter of a Config field that holds a finite
// rate of what a second, 0 or more.
func perSecondSetter(field func(c *Config) *float64, what string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return fmt.Errorf("must be a number of %s per second, 0 or more", what)
		}
		*field(c) = f
		return nil
	}
}

// boolSetter and durationSetter return the setters of a Config field that
// holds a bool or a positive duration.
func boolSetter(field func(c *Config) *bool) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		*field(c) = b
		return nil
	}
}

func durationSetter(field func(c *Config) *time.Duration) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		d, err := parseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("must be a positive duration such as 10s or 2m")
		}
		*field(c) = d
		return nil
	}
}

// offDurationSetter is durationSetter for a setting that 0 turns off.
func offDurationSetter(field func(c *Config) *time.Duration) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		d, err := parseDuration(v)
		if err != nil || d < 0 {
			return errors.New("must be a duration such as 1m, or 0 to turn it off")
		}
		*field(c) = d
		return nil
	}
}

// parseDuration is time.ParseDuration that also takes whole days, such as
// 90d, the unit retention periods are thought of in.
func parseDuration(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, errors.New("not a whole number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

// retentionSetter is offDurationSetter for how long rows are kept: 0 keeps
// them forever, and anything else must be at least a day, so that a slip of
// the unit (90s for 90d) cannot empty a table.
func retentionSetter(field func(c *Config) *time.Duration) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		d, err := parseDuration(v)
		if err != nil || (d != 0 && d < 24*time.Hour) {
			return errors.New("must be a duration of at least a day, such as 90d or 720h, or 0 to keep rows forever")
		}
		*field(c) = d
		return nil
	}
}
