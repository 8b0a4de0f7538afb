package waf

import (
	"bytes"
	"io"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/valyala/fasthttp"
)

// Coraza's XML body processor skips DOCTYPE declarations, and no body
// processor shows a multipart file's content to the rules, so the XXE rules
// (9500200-9500203) could not see an external entity. scanMarkup looks for
// markup declarations and XInclude in the raw request body, whatever its
// type, and adds each one found (at most maxMarkupFinds, each at most
// maxMarkupLen bytes) to ARGS_PATH as "xml:dtd" for the rules. The scan is
// a byte search for "<!" and "XInclude"/"xi:include": a body without them
// costs one pass of bytes.Index.
const (
	maxMarkupFinds = 16
	maxMarkupLen   = 2048
)

var (
	markupOpen = []byte("<!")
	xinclude   = [][]byte{[]byte("XInclude"), []byte("xi:include")}
)

// scanMarkup scans the request body the engine holds.
func (v *Verdict) scanMarkup(req *fasthttp.Request, tx types.Transaction) {
	st, ok := tx.(interface {
		Variables() plugintypes.TransactionVariables
	})
	if !ok {
		return
	}
	out := st.Variables().ArgsPath()
	finds := 0
	add := func(b []byte) {
		if finds < maxMarkupFinds {
			finds++
			out.Add("xml:dtd", string(b))
		}
	}
	if !req.IsBodyStream() {
		b := req.Body()
		if int64(len(b)) > v.p.bodyLimit {
			b = b[:v.p.bodyLimit]
		}
		markupFinds(b, add)
		return
	}
	r, err := tx.RequestBodyReader()
	if err != nil {
		return
	}
	// Chunks overlap by maxMarkupLen bytes, so that a declaration across
	// two reads is seen whole in the second.
	buf := make([]byte, 64<<10)
	keep := 0
	for finds < maxMarkupFinds {
		n, err := io.ReadFull(r, buf[keep:])
		if n == 0 {
			break
		}
		chunk := buf[:keep+n]
		markupFinds(chunk, add)
		if err != nil {
			break
		}
		keep = min(maxMarkupLen, len(chunk))
		copy(buf, chunk[len(chunk)-keep:])
	}
}

// markupFinds calls add with each DOCTYPE or ENTITY declaration of b and
// the text around each XInclude.
func markupFinds(b []byte, add func([]byte)) {
	for i := 0; i < len(b); {
		j := bytes.Index(b[i:], markupOpen)
		if j < 0 {
			break
		}
		j += i
		rest := b[j+2:]
		if hasPrefixFold(rest, "DOCTYPE") || hasPrefixFold(rest, "ENTITY") {
			end := min(len(b), j+maxMarkupLen)
			add(b[j:end])
			i = end
			continue
		}
		i = j + 2
	}
	for _, x := range xinclude {
		if j := bytes.Index(b, x); j >= 0 {
			start := max(0, j-maxMarkupLen/2)
			add(b[start:min(len(b), j+maxMarkupLen/2)])
		}
	}
}

func hasPrefixFold(b []byte, s string) bool {
	if len(b) < len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b[i]|0x20 != s[i]|0x20 {
			return false
		}
	}
	return true
}
