package processor

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/schema"
)

// UsageError is a usage or configuration mistake: the binary exits with
// status 2.
type UsageError struct{ Err error }

// Error implements error.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef formats a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitCode maps an error to a process exit status: 0 for nil, 2 for usage
// and configuration mistakes (UsageError, an invalid queue name), 1 otherwise.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var u *UsageError
	if errors.As(err, &u) || errors.Is(err, schema.ErrInvalidTopic) {
		return 2
	}
	return 1
}

// Redact replaces every secret of three or more characters in s with "***".
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// OneLine joins the lines of s and collapses runs of white space, so that an
// error prints as one line.
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	envValue      = regexp.MustCompile(`^could not parse "(.*)" (?:as [a-z0-9 ]+ value )?from environment variable "([^"]+)" (?:as value )?for flag ([^:]+): (.*)$`)
	invalidValue  = regexp.MustCompile(`^invalid value "(.*)" for flag -+([^:]+): (.*)$`)
)

// UsageErrorHandler returns an OnUsageError function for a cli.App or
// cli.Command that turns urfave/cli's flag errors into UsageErrors in this
// project's style: the flag named with "--", the bad value echoed, and a
// suggestion for a mistyped flag.
func UsageErrorHandler() cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		return &UsageError{Err: describeFlagError(c, err)}
	}
}

func describeFlagError(c *cli.Context, err error) error {
	msg := err.Error()
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		name := m[1]
		if c != nil && c.Command != nil && cli.SuggestFlag != nil {
			flags := c.Command.Flags
			if c.Command.Name == "" || len(flags) == 0 {
				flags = c.App.Flags
			}
			if s := cli.SuggestFlag(flags, name, false); s != "" {
				return fmt.Errorf("unknown flag --%s (did you mean %s?)", name, s)
			}
		}
		return fmt.Errorf("unknown flag --%s", name)
	}
	if m := envValue.FindStringSubmatch(msg); m != nil {
		reason := m[4]
		if i := strings.LastIndex(reason, ": "); i >= 0 {
			reason = reason[i+2:]
		}
		return fmt.Errorf("environment variable %s %q (--%s): %s", m[2], m[1], m[3], reason)
	}
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		reason := m[3]
		if i := strings.LastIndex(reason, ": "); i >= 0 {
			reason = reason[i+2:]
		}
		return fmt.Errorf("--%s %q: %s", m[2], m[1], reason)
	}
	return err
}

// envFlagRef matches the "--flag" that a validation error names.
var envFlagRef = regexp.MustCompile(`--[a-z0-9][a-z0-9-]*`)

// NameEnvSource rewrites the first "--flag" that err names into the
// environment variable its value came from, when the value came from the
// environment and not from args; other errors are returned unchanged.
func NameEnvSource(err error, args []string, flags []cli.Flag) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	ref := envFlagRef.FindString(msg)
	if ref == "" || strings.Contains(msg, "environment variable ") {
		return err
	}
	name := strings.TrimPrefix(ref, "--")
	for _, f := range flags {
		names := f.Names()
		if names[0] != name {
			continue
		}
		if onCommandLine(args, names) {
			return err
		}
		env, ok := f.(interface{ GetEnvVars() []string })
		if !ok {
			return err
		}
		for _, v := range env.GetEnvVars() {
			if _, set := lookupEnv(v); set {
				return &envError{msg: strings.Replace(msg, ref, "environment variable "+v, 1), err: err}
			}
		}
	}
	return err
}

type envError struct {
	msg string
	err error
}

func (e *envError) Error() string { return e.msg }
func (e *envError) Unwrap() error { return e.err }

// onCommandLine reports whether one of a flag's names appears in args.
func onCommandLine(args []string, names []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		a = strings.TrimLeft(a, "-")
		a, _, _ = strings.Cut(a, "=")
		for _, n := range names {
			if a == n {
				return true
			}
		}
	}
	return false
}
