package proxy

// mirror copies a share of a route's requests to another upstream (not
// built yet).
type mirror struct{}

func (s *Server) buildMirror(e *edgeBuild, r *route) error { return nil }

// mirrorRequest copies the request, when it is among those chosen.
func (x *exchange) mirrorRequest() {}
