package eval

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Attack classes. Each is a file attacks/CLASS.txt of the corpus.
const (
	ClassSQLi      = "sqli"
	ClassXSS       = "xss"
	ClassCmdi      = "cmdi"
	ClassTraversal = "traversal"
	ClassLFI       = "lfi"
	ClassNoSQLi    = "nosqli"
	ClassLDAPi     = "ldapi"
	ClassXXE       = "xxe"
	ClassSSTI      = "ssti"
	ClassRedirect  = "redirect"
)

// DefaultClasses are the classes evaluated unless others are asked for.
// Open redirect (ClassRedirect) is left out: its payloads are ordinary
// URLs ("//example.com", "https://example.com/"), which only the
// application's own allow-list of redirect targets can judge; a WAF that
// refused them would refuse every link shared in a form.
var DefaultClasses = []string{ClassSQLi, ClassXSS, ClassCmdi, ClassTraversal, ClassLFI,
	ClassNoSQLi, ClassLDAPi, ClassXXE, ClassSSTI}

// AllClasses are every class of the attack corpus.
var AllClasses = append(append([]string(nil), DefaultClasses...), ClassRedirect)

//go:embed corpus
var embedded embed.FS

// Corpus is the attack payloads by class and the benign requests and
// values.
type Corpus struct {
	// Attacks are the payloads by class, in file order.
	Attacks map[string][]string
	// Benign are whole requests written as they are sent.
	Benign []*Case
	// Values are benign parameter values (search queries, comments,
	// filters), each placed in the placements that carry free text.
	Values []string
}

// Embedded returns the corpus shipped in the binary.
func Embedded() (*Corpus, error) {
	sub, err := fs.Sub(embedded, "corpus")
	if err != nil {
		return nil, err
	}
	return Load(sub)
}

// Load reads a corpus laid out as the embedded one: attacks/CLASS.txt
// (one payload a line, no comments), benign/*.http (requests, see
// ParseHTTP) and benign/values.txt (one value a line; "#" starts a comment
// line).
func Load(fsys fs.FS) (*Corpus, error) {
	c := &Corpus{Attacks: make(map[string][]string)}
	for _, class := range AllClasses {
		b, err := fs.ReadFile(fsys, path.Join("attacks", class+".txt"))
		if err != nil {
			return nil, fmt.Errorf("eval: corpus: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				c.Attacks[class] = append(c.Attacks[class], line)
			}
		}
	}
	files, err := fs.Glob(fsys, "benign/*.http")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		cases, err := ParseHTTP(path.Base(f), b)
		if err != nil {
			return nil, err
		}
		c.Benign = append(c.Benign, cases...)
	}
	if b, err := fs.ReadFile(fsys, "benign/values.txt"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimRight(line, "\r")
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				continue
			}
			c.Values = append(c.Values, unescapeValue(line))
		}
	} else if !isNotExist(err) {
		return nil, err
	}
	return c, nil
}

func isNotExist(err error) bool {
	return err != nil && strings.Contains(err.Error(), "file does not exist")
}

// unescapeValue turns the two escapes of values.txt, \n and \\, into a
// newline and a backslash: a value may span lines (a comment, Markdown).
func unescapeValue(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// DefaultHost is the Host of the corpus's requests that name none.
const DefaultHost = "shop.example.com"

// browserHeaders are added to a benign request that does not set them:
// what a browser sends.
var browserHeaders = [][2]string{
	{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
	{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
	{"Accept-Language", "en-US,en;q=0.5"},
	{"Accept-Encoding", "gzip, deflate, br"},
}

// ParseHTTP reads benign requests written as in an editor's .http file:
//
//	### a name for the request
//	POST /api/orders?dry_run=1
//	Content-Type: application/json
//
//	{"sku": "A-100", "qty": 2}
//
// Each request starts with a "###" line naming it; then the request line
// (method and target, as sent: the target is not escaped), header lines,
// a blank line and the body, up to the next "###" line (blank lines at
// its end are dropped). Body lines are joined with "\n", or "\r\n" for
// multipart bodies. Host, User-Agent, Accept, Accept-Language and
// Accept-Encoding are added when not given; Content-Length is always the
// body's length. Lines before the first "###" are a comment.
func ParseHTTP(file string, b []byte) ([]*Case, error) {
	var cases []*Case
	var cur *Case
	var lines []string
	start := 0
	flush := func() error {
		if cur == nil {
			return nil
		}
		if err := parseRequest(cur, lines); err != nil {
			return fmt.Errorf("eval: %s:%d: %s: %w", file, start, cur.Name, err)
		}
		cases = append(cases, cur)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "###") {
			if err := flush(); err != nil {
				return nil, err
			}
			name := strings.TrimSpace(strings.TrimPrefix(line, "###"))
			cur = &Case{Name: strings.TrimSuffix(file, ".http") + ": " + name, Placement: "request", Encoding: EncPlain}
			lines, start = nil, n
			continue
		}
		if cur != nil {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return cases, nil
}

func parseRequest(c *Case, lines []string) error {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	if len(lines) == 0 {
		return fmt.Errorf("no request line")
	}
	method, target, ok := strings.Cut(lines[0], " ")
	if !ok || method == "" || target == "" || strings.ContainsAny(target, " \t") {
		return fmt.Errorf("request line %q: want METHOD TARGET", lines[0])
	}
	c.Req.Method, c.Req.Target = method, target
	i := 1
	for ; i < len(lines) && lines[i] != ""; i++ {
		name, value, ok := strings.Cut(lines[i], ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return fmt.Errorf("header line %q: want Name: value", lines[i])
		}
		c.Req.Header = append(c.Req.Header, [2]string{name, strings.TrimLeft(value, " \t")})
	}
	body := lines[min(i+1, len(lines)):]
	for len(body) > 0 && body[len(body)-1] == "" {
		body = body[:len(body)-1]
	}
	sep := "\n"
	if strings.HasPrefix(strings.ToLower(c.Req.Get("Content-Type")), "multipart/") {
		sep = "\r\n"
		if len(body) > 0 {
			body = append(body, "") // the closing delimiter line ends with CRLF
		}
	}
	c.Req.Body = []byte(strings.Join(body, sep))
	c.Req.addDefaults()
	return nil
}
