package proxy

// routeEdits are a route's rewrite and header edits (not built yet).
type routeEdits struct{}

func (s *Server) buildEdits(e *edgeBuild, r *route) error { return nil }

// editRequest rewrites the path and edits the request header fields.
func (x *exchange) editRequest() {}

// editResponse edits the response header fields.
func (x *exchange) editResponse() {}
