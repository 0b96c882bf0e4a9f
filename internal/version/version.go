// Package version reports which build of ctrader is running.
package version

import "runtime/debug"

// Version is stamped at build time with
// -ldflags "-X github.com/ctrader/ctrader/internal/version.Version=v1.2.3".
// Builds without the stamp report "dev" plus the VCS revision when Go recorded one.
var Version = "dev"

// String returns the version followed by the VCS revision when known.
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if revision == "" {
		return Version
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	return Version + " (" + revision + modified + ")"
}
