// Command gen imports the attack corpus of package eval from a
// PayloadsAllTheThings checkout (its Intruder lists):
//
//	go run ./waf/eval/gen -src /path/to/payloadsallthethings -out waf/eval/corpus/attacks
//
// It writes one file per class, CLASS.txt, one payload a line, and prints
// what it kept and dropped. The checkout's LICENSE and SOURCE are copied
// beside them.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rampart-proxy/rampart/waf/eval"
)

func main() {
	src := flag.String("src", "", "the PayloadsAllTheThings checkout")
	out := flag.String("out", "waf/eval/corpus/attacks", "where to write CLASS.txt")
	flag.Parse()
	if *src == "" {
		fmt.Fprintln(os.Stderr, "gen: -src is required")
		os.Exit(2)
	}
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	byClass, st, err := eval.Import(os.DirFS(src), ".")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, class := range eval.AllClasses {
		body := strings.Join(byClass[class], "\n") + "\n"
		if err := os.WriteFile(filepath.Join(out, class+".txt"), []byte(body), 0o644); err != nil {
			return err
		}
		fmt.Printf("%-10s read %5d  dropped %5d  duplicates %5d  sampled out %5d  kept %5d\n", class,
			st.Read[class], st.Dropped[class], st.Duplicates[class], st.Sampled[class], st.Kept[class])
	}
	reasons := make([]string, 0, len(st.DroppedBy))
	for r := range st.DroppedBy {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Printf("dropped, %s: %d\n", r, st.DroppedBy[r])
	}
	for _, f := range []string{"LICENSE", "SOURCE"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
