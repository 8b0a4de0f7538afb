package config

import "strconv"

// edges checks compression, rewrites, header edits and mirroring (issue 21).
func (v *validator) edges() {
	if v.c.Compression != nil {
		v.errorf("compression", "compression is not supported yet")
	}
	for i, r := range v.c.Routes {
		if r == nil {
			continue
		}
		p := "routes[" + strconv.Itoa(i) + "]"
		if r.Compress {
			v.fieldf(p, "compress", "compression is not supported yet")
		}
		if r.Rewrite != nil {
			v.fieldf(p, "rewrite", "rewrites are not supported yet")
		}
		if r.RequestHeaders != nil {
			v.fieldf(p, "request_headers", "header edits are not supported yet")
		}
		if r.ResponseHeaders != nil {
			v.fieldf(p, "response_headers", "header edits are not supported yet")
		}
		if r.Mirror != nil {
			v.fieldf(p, "mirror", "mirroring is not supported yet")
		}
	}
}
