package waf

import (
	"reflect"
	"unsafe"
)

// Coraza exports no interface for some of what Rampart needs of its rules
// and transactions (a rule's transformations, a transaction's cache map,
// the engine's rule list, the field Rampart's Coraza patch adds), so
// fuse.go, logdata.go, ctltag.go, txcache.go and patched.go read those
// fields with reflect. Each checks the layout it expects and does nothing
// when it finds another; their tests fail then.

// pointedStruct returns the struct x points to; ok is false when x is not a
// non-nil pointer to a struct.
func pointedStruct(x any) (v reflect.Value, ok bool) {
	v = reflect.ValueOf(x)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return v.Elem(), true
}

// exposed returns f, a field of an addressable struct, as a value that can
// be read and set although the field is unexported.
func exposed(f reflect.Value) reflect.Value {
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}
