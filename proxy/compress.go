package proxy

import "io"

// compressor is a route's compression (not built yet).
type compressor struct{}

// compressExchange is a request's compression state.
type compressExchange struct{}

func (c *compressExchange) reset() {}

func (s *Server) buildCompress(e *edgeBuild, r *route) error { return nil }

// compressResponse compresses the response when the client asks for it
// and the answer suits, and returns the body to relay in body's place
// (nil: the body is whole in the response).
func (x *exchange) compressResponse(body io.ReadCloser) io.ReadCloser { return body }
