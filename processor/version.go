package processor

import (
	"runtime/debug"
	"strings"
)

// Version returns the module version and VCS revision the binary was built
// from, e.g. "v0.3.0 (rev 87cdeb9, modified)" or "(devel) (rev 87cdeb9)".
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	var b strings.Builder
	b.WriteString(v)
	if rev != "" {
		b.WriteString(" (rev " + rev + modified + ")")
	}
	b.WriteString(" " + info.GoVersion)
	return b.String()
}
