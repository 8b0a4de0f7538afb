package http1

import (
	"bytes"
	"testing"
)

// tlsRecord is a record of the given type with an n-byte body.
func tlsRecord(typ byte, n int) []byte {
	return append([]byte{typ, 3, 3, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{0xab}, n)...)
}

// TestRecordScan: records are counted where they end, whatever the read
// sizes, an empty record included.
func TestRecordScan(t *testing.T) {
	a, b, empty, big := tlsRecord(23, 40), tlsRecord(23, 7), tlsRecord(21, 0), tlsRecord(23, 17000)
	stream := bytes.Join([][]byte{a, b, empty, big}, nil)
	whole := []int{len(a), len(a) + len(b), len(a) + len(b) + len(empty), len(stream)} // offsets where records end
	for _, step := range []int{1, 2, 3, 5, 6, 47, 48, 52, 4096, len(stream)} {
		var r recordConn
		total, seen := 0, 0
		for off := 0; off < len(stream); off += step {
			chunk := stream[off:min(off+step, len(stream))]
			want := 0
			for _, e := range whole {
				if e > off && e <= off+len(chunk) {
					want++
				}
			}
			if got := r.scan(chunk); got != want {
				t.Fatalf("reads of %d: the read at %d completed %d records; want %d", step, off, got, want)
			}
			total += want
			seen += len(chunk)
		}
		if total != len(whole) || seen != len(stream) || r.left != 0 || r.hdrN != 0 {
			t.Errorf("reads of %d: %d records, left %d, header %d; want %d, 0, 0", step, total, r.left, r.hdrN, len(whole))
		}
	}
}
