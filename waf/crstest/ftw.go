// Package crstest runs the OWASP CRS regression tests (go-ftw YAML, shipped
// in the coraza-coreruleset module's tests folder) against a running HTTP
// endpoint: it sends each test's request over a real socket and reads which
// rules fired from Rampart's WAF audit log (JSON lines), then checks the
// test's expect_ids and no_expect_ids.
//
// The endpoint's policy must be configured as the CRS's own test setup is
// (see PolicyRules): detection only, paranoia level 4, and the marker rule
// 999999 that logs requests carrying an X-CRS-Test header. After each test
// the runner sends such a marker request; since the audit log is written in
// order, every event between the previous marker and this one belongs to
// the test.
//
// Runner.RunFiles runs many tests against the known failures read by
// ReadExclusions; Backend is an upstream that answers as the CRS test
// backend does (POST /reflect), needed by the response tests.
package crstest

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is one go-ftw YAML file: the tests of one rule.
type File struct {
	Meta struct {
		Author      string `yaml:"author"`
		Description string `yaml:"description"`
	} `yaml:"meta"`
	RuleID int    `yaml:"rule_id"`
	Tests  []Test `yaml:"tests"`
	// Path is where the file was read from. Not part of the YAML.
	Path string `yaml:"-"`
}

// Test is one regression test.
type Test struct {
	TestID int     `yaml:"test_id"`
	Desc   string  `yaml:"desc"`
	Stages []Stage `yaml:"stages"`
	// Name is "RULE-TESTID", as the CRS names tests ("942100-1").
	Name string `yaml:"-"`
}

// Stage is one request and what it must produce.
type Stage struct {
	Input  Input  `yaml:"input"`
	Output Output `yaml:"output"`
}

// Input describes the request. DestAddr and Port are ignored: the runner
// sends to its own address.
type Input struct {
	DestAddr            string            `yaml:"dest_addr"`
	Port                int               `yaml:"port"`
	Protocol            string            `yaml:"protocol"`
	Method              *string           `yaml:"method"`
	URI                 *string           `yaml:"uri"`
	Version             *string           `yaml:"version"`
	Headers             map[string]string `yaml:"headers"`
	Data                *string           `yaml:"data"`
	AutocompleteHeaders *bool             `yaml:"autocomplete_headers"`
	StopMagic           *bool             `yaml:"stop_magic"`
	EncodedRequest      string            `yaml:"encoded_request"`
	RawRequest          string            `yaml:"raw_request"`
	RetryOnce           bool              `yaml:"retry_once"`
}

// Output is what the stage expects.
type Output struct {
	Log struct {
		ExpectIDs    []int  `yaml:"expect_ids"`
		NoExpectIDs  []int  `yaml:"no_expect_ids"`
		MatchRegex   string `yaml:"match_regex"`
		NoMatchRegex string `yaml:"no_match_regex"`
	} `yaml:"log"`
	Status      Statuses `yaml:"status"`
	ExpectError bool     `yaml:"expect_error"`
}

// Statuses is a status code or a list of them.
type Statuses []int

// UnmarshalYAML accepts 200 or [200, 404].
func (s *Statuses) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		var l []int
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	var one int
	if err := n.Decode(&one); err != nil {
		return err
	}
	*s = Statuses{one}
	return nil
}

// Load reads every *.yaml file under root of fsys, sorted by path.
func Load(fsys fs.FS, root string) ([]*File, error) {
	var paths []string
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	files := make([]*File, 0, len(paths))
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		f := &File{Path: p}
		if err := yaml.Unmarshal(b, f); err != nil {
			return nil, fmt.Errorf("crstest: %s: %w", p, err)
		}
		if f.RuleID == 0 { // older files name the rule only in the file name
			f.RuleID, _ = strconv.Atoi(strings.TrimSuffix(path.Base(p), ".yaml"))
		}
		for i := range f.Tests {
			f.Tests[i].Name = strconv.Itoa(f.RuleID) + "-" + strconv.Itoa(f.Tests[i].TestID)
		}
		files = append(files, f)
	}
	return files, nil
}
