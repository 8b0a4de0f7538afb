package eval

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
)

// A Source maps the folders of a PayloadsAllTheThings checkout (its
// Intruder payload lists) to attack classes.
type Source struct {
	Folder string
	Class  string
}

// PATTSources are the PayloadsAllTheThings folders imported, by class.
// Left out: "Insecure Management Interface" (Spring Boot actuator endpoint
// names, not payloads) and "Web Cache Deception" (a list of header names).
var PATTSources = []Source{
	{"SQL Injection", ClassSQLi},
	{"XSS Injection", ClassXSS},
	{"Command Injection", ClassCmdi},
	{"Directory Traversal", ClassTraversal},
	{"File Inclusion", ClassLFI},
	{"NoSQL Injection", ClassNoSQLi},
	{"LDAP Injection", ClassLDAPi},
	{"XXE Injection", ClassXXE},
	{"Server Side Template Injection", ClassSSTI},
	{"Open Redirect", ClassRedirect},
}

// MaxImported bounds the payloads kept per class. Larger classes (the
// traversal lists hold some 25,000 variations of a few dozen file names)
// are sampled with ImportSeed, so that the stored corpus stays small and
// a re-import gives the same files.
const (
	MaxImported = 1500
	ImportSeed  = 20
)

// ImportStats says what an import kept and dropped, by class.
type ImportStats struct {
	Read, Kept, Dropped, Duplicates, Sampled map[string]int
	// DroppedBy counts the dropped lines by reason.
	DroppedBy map[string]int
}

// Import reads the payload lists under root of fsys (a PayloadsAllTheThings
// checkout) and returns the attack payloads by class: filtered (see
// Keep), deduplicated, in the order read, and sampled down to MaxImported.
func Import(fsys fs.FS, root string) (map[string][]string, *ImportStats, error) {
	st := &ImportStats{Read: map[string]int{}, Kept: map[string]int{}, Dropped: map[string]int{},
		Duplicates: map[string]int{}, Sampled: map[string]int{}, DroppedBy: map[string]int{}}
	out := make(map[string][]string)
	for _, src := range PATTSources {
		var files []string
		dir := path.Join(root, src.Folder)
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("eval: import %s: %w", src.Folder, err)
		}
		sort.Strings(files)
		seen := make(map[string]bool)
		var kept []string
		for _, f := range files {
			b, err := fs.ReadFile(fsys, f)
			if err != nil {
				return nil, nil, err
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			for sc.Scan() {
				line := strings.TrimRight(sc.Text(), "\r")
				if src.Class == ClassTraversal || src.Class == ClassLFI {
					line = strings.ReplaceAll(line, "{FILE}", "etc/passwd")
				}
				st.Read[src.Class]++
				if why := Keep(src.Class, line); why != "" {
					st.Dropped[src.Class]++
					st.DroppedBy[why]++
					continue
				}
				if seen[line] {
					st.Duplicates[src.Class]++
					continue
				}
				seen[line] = true
				kept = append(kept, line)
			}
			if err := sc.Err(); err != nil {
				return nil, nil, fmt.Errorf("eval: import %s: %w", f, err)
			}
		}
		if len(kept) > MaxImported {
			st.Sampled[src.Class] = len(kept) - MaxImported
			kept = sample(kept, MaxImported, ImportSeed)
		}
		st.Kept[src.Class] += len(kept)
		out[src.Class] = append(out[src.Class], kept...)
	}
	return out, st, nil
}

// sample returns n of items, chosen with seed, in their original order.
func sample(items []string, n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 0))
	idx := r.Perm(len(items))[:n]
	slices.Sort(idx)
	out := make([]string, n)
	for i, k := range idx {
		out[i] = items[k]
	}
	return out
}

// Reasons a line of a payload list is not imported.
const (
	DropEmpty    = "empty"
	DropComment  = "comment"
	DropBareWord = "a bare word, or no word"
	DropLong     = "longer than MaxPayload"
	DropControl  = "control character"
	DropNotLFI   = "no traversal, wrapper or sensitive path"
	DropNotXXE   = "no entity declaration or XInclude"
)

// MaxPayload bounds a payload's length: longer lines are dropped.
const MaxPayload = 2048

// Keep returns why line is not an attack payload of class, or "" to keep
// it. The rule, for every class:
//   - empty and whitespace-only lines are dropped, and comment lines ("#"
//     alone or followed by a space);
//   - a payload must hold a word of at least two ASCII letters, and must
//     not be a bare word (letters, digits, "_" and "-", in parts joined
//     by single dots: "cn", "admin", "wp-login.php"): a lone quote or
//     separator (";", "'\"", "||", "%0a") or a bare word is a probe, not
//     an attack, and an application sees such values in ordinary traffic
//     ("O'Brien", "a || b"); the word may be %-encoded; a template expression ("{{7*7}}", "${3*3}",
//     "#{3*3}", "<%= 7*7 %>") needs no word;
//   - lines longer than MaxPayload bytes or with control characters
//     (other than tab) are dropped;
//   - in traversal and file inclusion lists, the placeholder "{FILE}" (of
//     deep_traversal.txt) is replaced by "etc/passwd"; their payloads need
//     no word (a bare "../../../../" is an attack) but must hold, as
//     written or %-decoded, a traversal ("..", "%2e", overlong UTF-8
//     forms), a wrapper or scheme ("php://", "file:"), a NUL byte form or
//     an absolute path into a system directory (/etc, /proc, /var, /usr,
//     /root, /home, /dev, /bin, c:\, windows): "/robots.txt" and
//     "wp-login.php" are names, not attacks;
//   - XXE payloads must declare an entity ("<!ENTITY") or use XInclude:
//     the lists also hold plain XML and XPath probes.
func Keep(class, line string) string {
	t := strings.TrimSpace(line)
	switch {
	case t == "":
		return DropEmpty
	case t == "#" || strings.HasPrefix(t, "# "):
		return DropComment
	case len(line) > MaxPayload:
		return DropLong
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return DropControl
		}
	}
	fileClass := class == ClassTraversal || class == ClassLFI
	if d := pctDecode(pctDecode(t)); !fileClass && !hasWord(d) && !hasTemplate(d) || isBareWord(t) {
		return DropBareWord
	}
	lower := strings.ToLower(t)
	switch class {
	case ClassTraversal, ClassLFI:
		if !isFileAttack(lower) && !isFileAttack(strings.ToLower(pctDecode(pctDecode(t)))) {
			return DropNotLFI
		}
	case ClassXXE:
		if !strings.Contains(lower, "<!entity") && !strings.Contains(lower, "xinclude") && !strings.Contains(lower, "xi:include") {
			return DropNotXXE
		}
	}
	return ""
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// hasWord reports whether s holds two ASCII letters in a row.
func hasWord(s string) bool {
	for i := 1; i < len(s); i++ {
		if isLetter(s[i-1]) && isLetter(s[i]) {
			return true
		}
	}
	return false
}

// pctDecode decodes the valid %XX escapes of s.
func pctDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// hasTemplate reports whether s opens a template expression.
func hasTemplate(s string) bool {
	for _, open := range []string{"{{", "${", "#{", "<%", "{%", "@("} {
		if strings.Contains(s, open) {
			return true
		}
	}
	return false
}

// isBareWord reports whether s is letters, digits, "_" and "-", in parts
// joined by single dots.
func isBareWord(s string) bool {
	prevDot := true // no dot first
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLetter(c) || c >= '0' && c <= '9' || c == '_' || c == '-':
			prevDot = false
		case c == '.' && !prevDot:
			prevDot = true
		default:
			return false
		}
	}
	return !prevDot
}

// fileMarkers are the substrings, lower case, of a traversal or file
// inclusion payload.
var fileMarkers = []string{
	"..", "%2e", "%252e", "%25c0%25ae", "%25c1", "%c1%9c", "%c0%af", ".?", "%c0%ae", "%c0%2e", "%u002e", "%uff0e", "0x2e", "%e0%80%ae",
	"://", "php:", "file:", "data:", "expect:", "zip:", "phar:", "jar:",
	"%00", "\\x00",
	"/etc/", "/proc/", "/var/", "/usr/", "/root/", "/home/", "/dev/", "/bin/", "/opt/", "/sys/",
	"etc/passwd", "etc/shadow", "\\etc\\", "etc\\passwd", "etc%2f", "etc%5c", "etc%c0",
	"c:\\", "c:/", "c:%", "\\windows", "/windows", "win.ini", "boot.ini", "system32",
}

func isFileAttack(lower string) bool {
	for _, m := range fileMarkers {
		if strings.Contains(lower, m) {
			return true
		}
	}
	return false
}
