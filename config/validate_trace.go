package config

// tracing checks the tracing section (issue 23).
func (v *validator) tracing() {
	if v.c.Tracing != nil {
		v.errorf("tracing", "tracing is not supported yet")
	}
	if v.c.AccessLog.Format != "" || len(v.c.AccessLog.Fields) > 0 {
		v.errorf("access_log", "format and fields are not supported yet")
	}
}
