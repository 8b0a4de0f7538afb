package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The unmarshalers below sit on types written as YAML scalars only (Rate is
// a Go struct but has no YAML fields). A custom UnmarshalYAML on
// a struct would silently switch off KnownFields for everything below it
// (go-yaml #460). They return *yaml.TypeError, never a plain error, because
// yaml.v3 collects TypeErrors and keeps decoding, so one run reports every
// bad value of a file; a plain error would abort at the first.

// UnmarshalYAML reads a duration such as "10s", "1m30s" or "250ms", or 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, kindWord(n)+`; want a duration such as "10s"`)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*d = v
	return nil
}

// UnmarshalYAML reads a byte count such as 1024, "16KiB" or "10MB".
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, kindWord(n)+`; want a size such as 1024 or "16KiB"`)
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*s = v
	return nil
}

// UnmarshalYAML reads a rate such as "100/s", "20/m" or "1000/h".
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, kindWord(n)+`; want a rate such as "100/s"`)
	}
	v, err := ParseRate(n.Value)
	if err != nil {
		return typeError(n, err.Error())
	}
	*r = v
	return nil
}

// typeError wraps msg the way yaml.v3 formats its own type errors, so that
// errors.go converts both alike. The column, which yaml.v3 leaves out,
// lets errors.go find the exact field when a line holds several.
func typeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)}}
}

// kindWord says what a non-scalar node is, for messages.
func kindWord(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "got a mapping"
	case yaml.SequenceNode:
		return "got a list"
	}
	return "got an alias"
}

// ParseDuration parses a non-negative Go duration ("10s", "1m30s", "250ms").
// A bare 0 is accepted; any other bare number is refused because its unit
// would be a guess.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	d, err := time.ParseDuration(t)
	if err != nil {
		if _, nerr := strconv.ParseFloat(t, 64); nerr == nil {
			return 0, fmt.Errorf(`invalid duration %q: missing unit (e.g. "%ss")`, s, t)
		}
		return 0, fmt.Errorf(`invalid duration %q (want e.g. "10s", "1m30s", "250ms")`, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return Duration(d), nil
}

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// sizeUnits maps a lower-cased unit to its multiplier. K, M and G alone mean
// the binary units because that is what operators of nginx and HAProxy
// mean by them.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
}

// ParseSize parses a byte count: a plain integer, or an integer followed by
// B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB or K, M, G, T
// (powers of 1024). Units are case-insensitive; a space may precede them.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	digits := 0
	for digits < len(t) && t[digits] >= '0' && t[digits] <= '9' {
		digits++
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("invalid size %q: negative", s)
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[digits:]))]
	if digits == 0 || !ok {
		return 0, fmt.Errorf(`invalid size %q (want bytes, or a number with a unit: B, KB, MB, GB, KiB, MiB, GiB)`, s)
	}
	n, err := strconv.ParseInt(t[:digits], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n * mult), nil
}

// String formats s in the largest binary unit that divides it exactly.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// ratePeriods maps the accepted period words to their duration.
var ratePeriods = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
}

// ParseRate parses "N/s", "N/m" or "N/h" (also "N/second", "N/minute",
// "N/hour") with N a positive integer.
func ParseRate(s string) (Rate, error) {
	num, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf(`invalid rate %q (want N/s, N/m or N/h, e.g. "100/s")`, s)
	}
	d, ok := ratePeriods[strings.ToLower(strings.TrimSpace(per))]
	if !ok {
		return Rate{}, fmt.Errorf(`invalid rate %q: period must be s, m or h`, s)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return Rate{}, fmt.Errorf(`invalid rate %q: count must be a positive integer`, s)
	}
	return Rate{N: n, Per: d}, nil
}

// IsZero reports whether r was left unset.
func (r Rate) IsZero() bool { return r.N == 0 && r.Per == 0 }

// String formats r as written in the file ("100/s").
func (r Rate) String() string {
	switch r.Per {
	case time.Second:
		return strconv.FormatInt(r.N, 10) + "/s"
	case time.Minute:
		return strconv.FormatInt(r.N, 10) + "/m"
	case time.Hour:
		return strconv.FormatInt(r.N, 10) + "/h"
	}
	return strconv.FormatInt(r.N, 10) + "/" + r.Per.String()
}
