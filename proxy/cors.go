package proxy

// corsPolicy is a route's CORS policy (not built yet).
type corsPolicy struct{}

func (s *Server) buildCORS(e *edgeBuild, r *route) error { return nil }

// corsPreflight answers a preflight request and reports whether it did.
func (x *exchange) corsPreflight() bool { return false }

// corsResponse adds the CORS fields to an actual response.
func (x *exchange) corsResponse() {}
