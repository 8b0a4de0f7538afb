package waf

import (
	"bytes"
	"reflect"
)

// A transaction holds a request and a response body buffer, each a
// bytes.Buffer inside Coraza's BodyBuffer, and transactions are pooled: a
// pooled transaction kept the largest body it ever held for whichever
// request drew it next, so a hundred stalled 1 MB uploads left a hundred
// 1 MiB buffers pinned, outside any budget, until the pool was collected.
// So the adapter drops a large buffer before its transaction goes back to
// the pool. (Sizing the buffer up front from Content-Length would save the
// buffer's doubling as it grows, but would hold a client's declared length
// before it sent any of it.)
//
// Coraza exports neither buffer (reflect.go explains why Rampart reads
// such fields); engineBuffer finds it, or nothing when Coraza is laid out
// otherwise (TestEngineBuffers notices), and the adapter then only loses
// this economy.

// Fields of Coraza's transaction holding a *BodyBuffer.
const (
	requestBuffer  = "requestBodyBuffer"
	responseBuffer = "responseBodyBuffer"
)

// keptBodyBuffer is the largest body buffer a pooled transaction keeps: a
// smaller one serves the next small body without allocating.
const keptBodyBuffer = 64 << 10

var bytesBufferType = reflect.TypeFor[*bytes.Buffer]()

// engineBuffer returns the bytes.Buffer of tx's body buffer named field,
// or nil when tx is not laid out as expected.
func engineBuffer(tx any, field string) *bytes.Buffer {
	v, ok := pointedStruct(tx)
	if !ok {
		return nil
	}
	f := v.FieldByName(field)
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() || f.Elem().Kind() != reflect.Struct {
		return nil
	}
	b := f.Elem().FieldByName("buffer")
	if !b.IsValid() || b.Type() != bytesBufferType || !b.CanAddr() {
		return nil
	}
	buf, _ := exposed(b).Interface().(*bytes.Buffer)
	return buf
}

// dropLargeBodies frees tx's body buffers that grew past keptBodyBuffer.
// Call it once the bodies are no longer read, before tx.Close, which puts
// tx back in its pool (and resets the buffers anyway).
func dropLargeBodies(tx any) {
	for _, field := range [...]string{requestBuffer, responseBuffer} {
		if b := engineBuffer(tx, field); b != nil && b.Cap() > keptBodyBuffer {
			*b = bytes.Buffer{}
		}
	}
}
