package waf

import (
	"fmt"
	"io"

	"github.com/corazawaf/coraza/v3/debuglog"
)

// parseLog is a Coraza debug logger that only remembers the directives the
// parser was given, in order. It is used once, to find which directive of
// a policy's own rules failed to compile: Coraza's errors do not say.
type parseLog struct {
	lines *[]string
}

func (l parseLog) WithOutput(io.Writer) debuglog.Logger          { return l }
func (l parseLog) WithLevel(debuglog.Level) debuglog.Logger      { return l }
func (l parseLog) With(...debuglog.ContextField) debuglog.Logger { return l }
func (l parseLog) Trace() debuglog.Event                         { return nopEvent{} }
func (l parseLog) Info() debuglog.Event                          { return nopEvent{} }
func (l parseLog) Warn() debuglog.Event                          { return nopEvent{} }
func (l parseLog) Error() debuglog.Event                         { return nopEvent{} }
func (l parseLog) Debug() debuglog.Event                         { return &parseEvent{lines: l.lines} }

// parseEvent records the "line" field of "Parsing directive" messages.
type parseEvent struct {
	lines *[]string
	line  string
}

func (e *parseEvent) Msg(msg string) {
	if msg == "Parsing directive" {
		*e.lines = append(*e.lines, e.line)
	}
}

func (e *parseEvent) Str(key, val string) debuglog.Event {
	if key == "line" {
		e.line = val
	}
	return e
}

func (e *parseEvent) Err(error) debuglog.Event                     { return e }
func (e *parseEvent) Bool(string, bool) debuglog.Event             { return e }
func (e *parseEvent) Int(string, int) debuglog.Event               { return e }
func (e *parseEvent) Uint(string, uint) debuglog.Event             { return e }
func (e *parseEvent) Stringer(string, fmt.Stringer) debuglog.Event { return e }
func (e *parseEvent) IsEnabled() bool                              { return true }

type nopEvent struct{}

func (nopEvent) Msg(string)                                     {}
func (e nopEvent) Str(string, string) debuglog.Event            { return e }
func (e nopEvent) Err(error) debuglog.Event                     { return e }
func (e nopEvent) Bool(string, bool) debuglog.Event             { return e }
func (e nopEvent) Int(string, int) debuglog.Event               { return e }
func (e nopEvent) Uint(string, uint) debuglog.Event             { return e }
func (e nopEvent) Stringer(string, fmt.Stringer) debuglog.Event { return e }
func (nopEvent) IsEnabled() bool                                { return false }
