package config

// tracing checks the tracing section (issue 23) and the access log's format
// and fields.
func (v *validator) tracing() {
	v.accessLog()
	if v.c.Tracing != nil {
		v.errorf("tracing", "tracing is not supported yet")
	}
}
