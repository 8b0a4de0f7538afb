// Command metricsdoc writes the reference table of docs/metrics.md from
// the collectors that metrics.New registers: every family's name, type,
// labels and help text, so that the reference cannot drift from the code
// (a test regenerates it and compares).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-proxy/rampart/metrics"
)

// Markers delimit the generated part of docs/metrics.md; the rest of the
// file is written by hand.
const (
	Begin = "<!-- BEGIN GENERATED: go generate ./metrics -->"
	End   = "<!-- END GENERATED -->"
)

func main() {
	path := flag.String("doc", "", "the Markdown file whose generated part to replace")
	flag.Parse()
	doc, err := os.ReadFile(*path)
	if err == nil {
		doc, err = Replace(doc)
	}
	if err == nil {
		err = os.WriteFile(*path, doc, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "metricsdoc:", err)
		os.Exit(1)
	}
}

// Replace returns doc with the part between the markers generated anew.
func Replace(doc []byte) ([]byte, error) {
	i, j := bytes.Index(doc, []byte(Begin)), bytes.Index(doc, []byte(End))
	if i < 0 || j < i {
		return nil, errors.New("the generated-part markers are missing")
	}
	table, err := Table()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(Begin)])
	out.WriteString("\n")
	out.WriteString(table)
	out.Write(doc[j:])
	return out.Bytes(), nil
}

// Family is one metric family as the reference shows it.
type Family struct {
	Name, Type, Help string
	Labels           []string
}

// capture is a Registerer that keeps what is registered.
type capture struct{ cs []prometheus.Collector }

func (c *capture) Register(x prometheus.Collector) error { c.cs = append(c.cs, x); return nil }
func (c *capture) MustRegister(xs ...prometheus.Collector) {
	c.cs = append(c.cs, xs...)
}
func (c *capture) Unregister(prometheus.Collector) bool { return false }

// descRE reads a prometheus.Desc's String form, the only way the client
// library shows a descriptor's parts.
var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", help: "((?:[^"\\]|\\.)*)", .*variableLabels: \{([^}]*)\}\}$`)

// Families are the families metrics.New registers, by name.
func Families() ([]Family, error) {
	c := &capture{}
	if _, err := metrics.New(c, "doc"); err != nil {
		return nil, err
	}
	var out []Family
	for _, col := range c.cs {
		typ := typeOf(col)
		ch := make(chan *prometheus.Desc, 16)
		go func() { col.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				return nil, fmt.Errorf("cannot read descriptor %s", d)
			}
			help := strings.ReplaceAll(m[2], `\"`, `"`)
			f := Family{Name: m[1], Type: typ, Help: help}
			if m[3] != "" {
				f.Labels = strings.Split(m[3], ",")
			}
			if f.Type == "" { // a collector of several families: by name
				f.Type = "gauge"
				if strings.HasSuffix(f.Name, "_total") {
					f.Type = "counter"
				}
			}
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func typeOf(c prometheus.Collector) string {
	// Gauge before Counter: a Gauge has Counter's methods too.
	switch c.(type) {
	case *prometheus.GaugeVec, prometheus.Gauge, prometheus.GaugeFunc:
		return "gauge"
	case *prometheus.CounterVec, prometheus.Counter:
		return "counter"
	case *prometheus.HistogramVec, prometheus.Histogram:
		return "histogram"
	case *prometheus.SummaryVec, prometheus.Summary:
		return "summary"
	}
	return ""
}

// Table is the generated Markdown table.
func Table() (string, error) {
	fams, err := Families()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, f := range fams {
		labels := "-"
		if len(f.Labels) > 0 {
			labels = "`" + strings.Join(f.Labels, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, f.Type, labels, strings.ReplaceAll(f.Help, "|", "\\|"))
	}
	return b.String(), nil
}
