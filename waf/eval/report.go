package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Rate is a count of cases and of those that went as they should: attacks
// blocked, benign requests passed.
type Rate struct {
	Name  string  `json:"name"`
	Total int     `json:"total"`
	Good  int     `json:"good"`
	Rate  float64 `json:"rate"` // percent
}

func (r *Rate) add(good bool) {
	r.Total++
	if good {
		r.Good++
	}
	r.Rate = 100 * float64(r.Good) / float64(r.Total)
}

// FalsePositive is a benign case that was blocked.
type FalsePositive struct {
	Case      string `json:"case"`
	Placement string `json:"placement"`
	Status    int    `json:"status"`
	Rules     []int  `json:"rules"`
	Payload   string `json:"payload,omitempty"`
}

// Report is the outcome of a run, by table.
type Report struct {
	// Target says what was evaluated: "policy NAME (route ROUTE)" or a
	// URL.
	Target string `json:"target"`
	Sample int    `json:"sample"`
	Seed   uint64 `json:"seed"`
	// Attacks are the attacks blocked; Benign the benign cases passed.
	Attacks Rate `json:"attacks"`
	Benign  Rate `json:"benign"`
	// ByClass, ByPlacement and ByEncoding are the attacks blocked.
	ByClass     []Rate `json:"by_class"`
	ByPlacement []Rate `json:"by_placement"`
	ByEncoding  []Rate `json:"by_encoding"`
	// Matrix is the attacks blocked by placement (row) and encoding.
	Matrix []MatrixRow `json:"matrix"`
	// BenignByPlacement are the benign cases passed by placement
	// ("request": written whole).
	BenignByPlacement []Rate `json:"benign_by_placement"`
	// FalsePositives are the benign cases blocked, with the rules that
	// matched.
	FalsePositives []FalsePositive `json:"false_positives"`
	// RulesOnBenign counts, by rule id, the benign cases each rule
	// matched (blocked or not).
	RulesOnBenign []RuleCount `json:"rules_on_benign"`
	// Skipped are the class, placement and encoding triples left out, and
	// why.
	Skipped []string `json:"skipped,omitempty"`
}

// MatrixRow is one placement's attacks blocked, by encoding.
type MatrixRow struct {
	Placement string `json:"placement"`
	Cells     []Rate `json:"cells"`
}

// RuleCount is how many cases a rule matched.
type RuleCount struct {
	ID    int `json:"id"`
	Count int `json:"count"`
}

// NewReport tabulates results.
func NewReport(target string, sel Selection, results []Result) *Report {
	rep := &Report{Target: target, Sample: sel.Sample, Seed: sel.Seed,
		Attacks: Rate{Name: "attacks blocked"}, Benign: Rate{Name: "benign passed"}}
	find := func(rows *[]Rate, name string) *Rate {
		for i := range *rows {
			if (*rows)[i].Name == name {
				return &(*rows)[i]
			}
		}
		*rows = append(*rows, Rate{Name: name})
		return &(*rows)[len(*rows)-1]
	}
	cell := func(p, e string) *Rate {
		for i := range rep.Matrix {
			if rep.Matrix[i].Placement == p {
				return find(&rep.Matrix[i].Cells, e)
			}
		}
		rep.Matrix = append(rep.Matrix, MatrixRow{Placement: p})
		return find(&rep.Matrix[len(rep.Matrix)-1].Cells, e)
	}
	ruleCounts := map[int]int{}
	for _, r := range results {
		c := r.Case
		if c.Attack {
			rep.Attacks.add(r.Blocked)
			find(&rep.ByClass, c.Class).add(r.Blocked)
			find(&rep.ByPlacement, c.Placement).add(r.Blocked)
			find(&rep.ByEncoding, c.Encoding).add(r.Blocked)
			cell(c.Placement, c.Encoding).add(r.Blocked)
			continue
		}
		rep.Benign.add(!r.Blocked)
		find(&rep.BenignByPlacement, c.Placement).add(!r.Blocked)
		for _, id := range r.Rules {
			ruleCounts[id]++
		}
		if r.Blocked {
			rep.FalsePositives = append(rep.FalsePositives, FalsePositive{Case: c.Name, Placement: c.Placement,
				Status: r.Status, Rules: r.Rules, Payload: excerpt(c.Payload, 120)})
		}
	}
	for id, n := range ruleCounts {
		rep.RulesOnBenign = append(rep.RulesOnBenign, RuleCount{id, n})
	}
	slices.SortFunc(rep.RulesOnBenign, func(a, b RuleCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return a.ID - b.ID
	})
	classes, places, encs := sel.Classes, sel.Placements, sel.Encodings
	if classes == nil {
		classes = DefaultClasses
	}
	if places == nil {
		places = Placements
	}
	if encs == nil {
		encs = Encodings
	}
	for _, cl := range classes {
		for _, p := range places {
			for _, e := range encs {
				if why := Skip(cl, p, e); why != "" {
					rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s/%s/%s: %s", cl, p, e, why))
				}
			}
		}
	}
	return rep
}

// matrixColumns returns the encodings of the matrix, in report order
// (Encodings first, then others as met).
func (rep *Report) matrixColumns() []string {
	var cols []string
	for _, e := range AllEncodings {
		for _, row := range rep.Matrix {
			if rowCell(row, e) != nil && !slices.Contains(cols, e) {
				cols = append(cols, e)
			}
		}
	}
	for _, row := range rep.Matrix {
		for _, c := range row.Cells {
			if !slices.Contains(cols, c.Name) {
				cols = append(cols, c.Name)
			}
		}
	}
	return cols
}

func rowCell(row MatrixRow, enc string) *Rate {
	for i := range row.Cells {
		if row.Cells[i].Name == enc {
			return &row.Cells[i]
		}
	}
	return nil
}

func cellPct(row MatrixRow, enc string) string {
	if c := rowCell(row, enc); c != nil {
		return pct(*c)
	}
	return "-"
}

// excerpt cuts s to n bytes on a character boundary, newlines as \n.
func excerpt(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

func pct(r Rate) string {
	if r.Total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", r.Rate)
}

// WriteText writes the tables for a terminal.
func (rep *Report) WriteText(w io.Writer, maxFP int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "target: %s; sample %d per class, placement and encoding (seed %d)\n\n", rep.Target, rep.Sample, rep.Seed)
	table := func(title, good string, rows []Rate) {
		fmt.Fprintf(tw, "%s\ttotal\t%s\trate\t\n", title, good)
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", r.Name, r.Total, r.Good, pct(r))
		}
		fmt.Fprintln(tw, "\t\t\t\t")
	}
	table("attacks", "blocked", []Rate{rep.Attacks})
	table("class", "blocked", rep.ByClass)
	table("placement", "blocked", rep.ByPlacement)
	table("encoding", "blocked", rep.ByEncoding)
	if len(rep.Matrix) > 0 {
		cols := rep.matrixColumns()
		fmt.Fprint(tw, "blocked\t")
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", c)
		}
		fmt.Fprintln(tw)
		for _, row := range rep.Matrix {
			fmt.Fprintf(tw, "%s\t", row.Placement)
			for _, c := range cols {
				fmt.Fprintf(tw, "%s\t", cellPct(row, c))
			}
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "\t\t\t\t")
	}
	table("benign", "passed", []Rate{rep.Benign})
	table("benign by placement", "passed", rep.BenignByPlacement)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "false positives: %d\n", len(rep.FalsePositives))
	for i, fp := range rep.FalsePositives {
		if maxFP >= 0 && i >= maxFP {
			fmt.Fprintf(w, "  ... %d more (--json lists them all)\n", len(rep.FalsePositives)-i)
			break
		}
		fmt.Fprintf(w, "  %s  rules %v\n", printable(fp.Case), fp.Rules)
		if fp.Payload != "" {
			fmt.Fprintf(w, "      %s\n", printable(fp.Payload))
		}
	}
	if len(rep.RulesOnBenign) > 0 {
		fmt.Fprint(w, "rules matched on benign cases (id: cases):")
		for i, rc := range rep.RulesOnBenign {
			if i == 20 {
				fmt.Fprint(w, " ...")
				break
			}
			fmt.Fprintf(w, " %d: %d", rc.ID, rc.Count)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// WriteMarkdown writes the tables as Markdown.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Target: %s. Sample: %d payloads per class, placement and encoding (seed %d).\n\n", rep.Target, rep.Sample, rep.Seed)
	table := func(title, good string, rows []Rate) {
		fmt.Fprintf(&b, "| %s | total | %s | rate |\n|---|---:|---:|---:|\n", title, good)
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %d | %d | %s |\n", r.Name, r.Total, r.Good, pct(r))
		}
		b.WriteString("\n")
	}
	table("attacks", "blocked", []Rate{rep.Attacks})
	table("class", "blocked", rep.ByClass)
	table("placement", "blocked", rep.ByPlacement)
	table("encoding", "blocked", rep.ByEncoding)
	if len(rep.Matrix) > 0 {
		cols := rep.matrixColumns()
		b.WriteString("| blocked |")
		sep := "|---|"
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", c)
			sep += "---:|"
		}
		b.WriteString("\n" + sep + "\n")
		for _, row := range rep.Matrix {
			fmt.Fprintf(&b, "| %s |", row.Placement)
			for _, c := range cols {
				fmt.Fprintf(&b, " %s |", cellPct(row, c))
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	table("benign", "passed", []Rate{rep.Benign})
	table("benign by placement", "passed", rep.BenignByPlacement)
	if len(rep.FalsePositives) > 0 {
		b.WriteString("| false positive | rules |\n|---|---|\n")
		for _, fp := range rep.FalsePositives {
			ids := make([]string, len(fp.Rules))
			for i, id := range fp.Rules {
				ids[i] = fmt.Sprint(id)
			}
			fmt.Fprintf(&b, "| %s | %s |\n", mdEscape(fp.Case), strings.Join(ids, ", "))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "`", "\\`", "<", "&lt;").Replace(s)
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// printable quotes what a terminal would interpret: payloads are attacker
// input.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			q := fmt.Sprintf("%q", s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// caseLine is one line of WriteCases.
type caseLine struct {
	Case      string `json:"case"`
	Attack    bool   `json:"attack"`
	Class     string `json:"class"`
	Placement string `json:"placement"`
	Encoding  string `json:"encoding"`
	Blocked   bool   `json:"blocked"`
	Status    int    `json:"status"`
	Rules     []int  `json:"rules"`
	Payload   string `json:"payload"`
}

// WriteCases writes every result as a JSON line: the case, its labels, the
// outcome and the payload, to find what was missed or refused.
func WriteCases(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range results {
		c := r.Case
		if err := enc.Encode(caseLine{c.Name, c.Attack, c.Class, c.Placement, c.Encoding, r.Blocked, r.Status, r.Rules, c.Payload}); err != nil {
			return err
		}
	}
	return nil
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("eval: report: %w", err)
	}
	return &rep, nil
}

// comparisonRows are the rows of a comparison: overall, by placement, by
// encoding, by class, benign, in this report's order.
func (rep *Report) comparisonRows() []Rate {
	rows := []Rate{rep.Attacks}
	for _, g := range []struct {
		prefix string
		rows   []Rate
	}{{"placement: ", rep.ByPlacement}, {"encoding: ", rep.ByEncoding}, {"class: ", rep.ByClass}} {
		for _, r := range g.rows {
			r.Name = g.prefix + r.Name
			rows = append(rows, r)
		}
	}
	return append(rows, rep.Benign)
}

// WriteComparison writes a Markdown table of base's rates beside rep's,
// row by row (a row missing from one is "-"), with the change in
// percentage points: the README's rampart_rules off and on columns.
func (rep *Report) WriteComparison(w io.Writer, base *Report, baseName, name string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| rate | %s | %s | change |\n|---|---:|---:|---:|\n", mdEscape(baseName), mdEscape(name))
	old := map[string]Rate{}
	for _, r := range base.comparisonRows() {
		old[r.Name] = r
	}
	cell := func(r Rate, ok bool) string {
		if !ok || r.Total == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%% (%d/%d)", r.Rate, r.Good, r.Total)
	}
	for _, r := range rep.comparisonRows() {
		o, ok := old[r.Name]
		change := "-"
		if ok && o.Total > 0 && r.Total > 0 {
			change = fmt.Sprintf("%+.1f", r.Rate-o.Rate)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdEscape(r.Name), cell(o, ok), cell(r, true), change)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
