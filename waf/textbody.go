package waf

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// A text/plain request body is what a browser sends without a CORS
// preflight: error trackers (Sentry's envelope: lines of JSON),
// navigator.sendBeacon analytics, JSON posted by a fetch that wants no
// preflight. Line-delimited JSON (application/x-ndjson, jsonl) is what log
// shippers and bulk APIs send. The CRS refuses these media types (920420)
// and, with no body processor named for them, Coraza reads the body as a
// form: a line of JSON becomes an argument name, which the CRS's header
// injection and command rules read as attacks, and the JSON the
// application parses is never inspected as JSON. The CRS's setup names the
// bypass this invites (JSON sent as text/plain) and the cure: parse the
// body as the application does.
//
// The body processor rampart_text does that: a body that is one JSON
// document is flattened as the JSON processor flattens it (json.a.b,
// json.list.0); a body of several (line-delimited JSON) as if they were
// the elements of one array (json.0.a, json.1.b); any other body is one
// argument, "text", the whole text the application reads, and its
// name=value pairs, if it has any, are arguments of their own. The api group
// hands these media types to it (rule 9500014) and takes 920420's score
// back for them: the body is inspected whatever it holds.

// textBodyProcessor is the body processor rampart_text.
type textBodyProcessor struct{}

func init() {
	plugins.RegisterBodyProcessor("rampart_text", func() plugintypes.BodyProcessor { return textBodyProcessor{} })
}

// textArg is the argument that holds a text body that is not JSON.
const textArg = "text"

func (textBodyProcessor) ProcessRequest(r io.Reader, v plugintypes.TransactionVariables, o plugintypes.BodyProcessorOptions) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	// REQUEST_BODY holds the body as the form processor's does: rules of
	// the CRS's and the user's read it whatever the processor. (Its
	// public type has no setter; Coraza's own has one.)
	if rb, ok := v.RequestBody().(interface{ Set(string) }); ok {
		rb.Set(string(b))
	} else {
		return errors.New("rampart_text: REQUEST_BODY cannot be set")
	}
	if n, ok := v.RequestBodyLength().(interface{ Set(string) }); ok {
		n.Set(strconv.Itoa(len(b)))
	}
	args := v.ArgsPost()
	limit := o.ArgumentLimit
	if limit <= 0 {
		limit = 1000
	}
	depth := o.RequestBodyRecursionLimit
	if depth <= 0 {
		depth = 1024
	}
	if vals, ok := jsonArgs(b, depth, limit); ok {
		for _, kv := range vals {
			args.Add(kv[0], kv[1])
		}
		return nil
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	args.Add(textArg, string(b))
	// An application may read name=value pairs from it (a form posted
	// with enctype text/plain, or a framework that parses any body as a
	// form): they are arguments too, as Coraza's form reading gave them.
	if bytes.IndexByte(b, '=') >= 0 {
		n := 0
		for _, pair := range strings.Split(string(b), "&") {
			k, val, ok := strings.Cut(pair, "=")
			if !ok || k == "" {
				continue
			}
			if n++; n > limit {
				break
			}
			args.Add(formUnescape(k), formUnescape(val))
		}
	}
	return nil
}

// formUnescape decodes a form field's %XX escapes and '+', leaving a
// malformed escape as it is.
func formUnescape(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

func (textBodyProcessor) ProcessResponse(io.Reader, plugintypes.TransactionVariables, plugintypes.BodyProcessorOptions) error {
	return nil
}

// jsonArgs flattens b, one JSON document or several in a row, into
// argument names and values, in document order; false when b is not
// JSON, nests deeper than depth, or holds more than limit values. The
// walk is iterative: no input nests the Go stack.
func jsonArgs(b []byte, depth, limit int) ([][2]string, bool) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' && t[0] != '[' {
		return nil, false // a bare string, number or word is text
	}
	type frame struct {
		path    string
		obj     bool
		n       int
		key     string
		wantKey bool
	}
	type doc struct{ start, end int }
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var (
		st   []frame
		vals [][2]string
		docs []doc
	)
	// child returns the path of the next value at the top of the stack,
	// and moves the frame past it.
	child := func() string {
		f := &st[len(st)-1]
		if f.obj {
			f.wantKey = true
			return f.path + "." + f.key
		}
		p := f.path + "." + strconv.Itoa(f.n)
		f.n++
		return p
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false
		}
		if len(st) > 0 && st[len(st)-1].obj && st[len(st)-1].wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				st = st[:len(st)-1]
				continue
			}
			k, ok := tok.(string)
			if !ok {
				return nil, false
			}
			st[len(st)-1].key, st[len(st)-1].wantKey = k, false
			continue
		}
		var path string
		if len(st) == 0 {
			docs = append(docs, doc{start: len(vals)})
		} else {
			path = child()
		}
		switch x := tok.(type) {
		case json.Delim:
			switch x {
			case '{', '[':
				if len(st) >= depth {
					return nil, false
				}
				st = append(st, frame{path: path, obj: x == '{', wantKey: x == '{'})
				continue
			default: // ']': '}' was handled with the keys
				st = st[:len(st)-1]
				continue
			}
		case string:
			vals = append(vals, [2]string{path, x})
		case json.Number:
			vals = append(vals, [2]string{path, x.String()})
		case bool:
			vals = append(vals, [2]string{path, strconv.FormatBool(x)})
		case nil:
			vals = append(vals, [2]string{path, ""})
		}
		if len(vals) > limit {
			return nil, false
		}
	}
	if len(st) != 0 || len(docs) == 0 {
		return nil, false
	}
	// One document: json.PATH. Several: json.N.PATH, N its place.
	for i, d := range docs {
		end := len(vals)
		if i+1 < len(docs) {
			end = docs[i+1].start
		}
		prefix := "json"
		if len(docs) > 1 {
			prefix = "json." + strconv.Itoa(i)
		}
		for j := d.start; j < end; j++ {
			vals[j][0] = prefix + vals[j][0]
		}
	}
	return vals, true
}

// textMediaType reports whether ct (a Content-Type, parameters aside) is
// one the api group hands to rampart_text: text/plain and line-delimited
// JSON.
func textMediaType(ct string) bool {
	switch mediaType(ct) {
	case "text/plain", "application/ndjson", "application/x-ndjson", "application/jsonl",
		"application/x-jsonl", "application/jsonlines", "application/x-jsonlines":
		return true
	}
	return false
}
