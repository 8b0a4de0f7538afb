package ratelimit

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// The little of RESP2 (the Redis protocol) that the pipe needs: commands out,
// and replies in, sized without copying and parsed when they are the
// script's pair of integers.

// errProtocol is a reply that is not valid RESP.
var errProtocol = errors.New("ratelimit: redis: protocol error")

// maxReplyDepth bounds nested arrays, so a broken server cannot recurse us
// deep.
const maxReplyDepth = 8

// appendCommand appends args as a RESP array of bulk strings.
func appendCommand(dst []byte, args ...string) []byte {
	dst = appendArrayHeader(dst, len(args))
	for _, a := range args {
		dst = appendBulk(dst, a)
	}
	return dst
}

func appendArrayHeader(dst []byte, n int) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '\r', '\n')
}

func appendBulk[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// replySize returns the length of the first complete reply in b, 0 when b
// holds only part of one.
func replySize(b []byte) (int, error) {
	return replySizeAt(b, 0, 0)
}

func replySizeAt(b []byte, off, depth int) (int, error) {
	if depth > maxReplyDepth {
		return 0, errProtocol
	}
	if off >= len(b) {
		return 0, nil
	}
	nl := bytes.Index(b[off:], []byte("\r\n"))
	if nl < 0 {
		return 0, nil
	}
	if nl == 0 {
		return 0, errProtocol // no type byte
	}
	line := b[off+1 : off+nl]
	next := off + nl + 2
	switch b[off] {
	case '+', '-', ':':
		return next, nil
	case '$':
		n, err := respInt(line)
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return next, nil // null bulk string
		}
		end := next + int(n) + 2
		if end > len(b) {
			return 0, nil
		}
		if b[end-2] != '\r' || b[end-1] != '\n' {
			return 0, errProtocol
		}
		return end, nil
	case '*':
		n, err := respInt(line)
		if err != nil {
			return 0, err
		}
		for i := int64(0); i < n; i++ {
			end, err := replySizeAt(b, next, depth+1)
			if end == 0 || err != nil {
				return 0, err
			}
			next = end
		}
		return next, nil
	}
	return 0, errProtocol
}

// respInt parses a RESP length or integer.
func respInt(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > 1<<31 {
		return 0, errProtocol
	}
	return n, nil
}

// parsePairs reads the script's reply, an array of two integers per call,
// into the calls' vals. An error reply is returned as an error: errNoScript
// for NOSCRIPT.
func parsePairs(reply []byte, calls []*pipeCall) error {
	switch reply[0] {
	case '-':
		msg := bytes.TrimRight(reply[1:], "\r\n")
		if bytes.HasPrefix(msg, []byte("NOSCRIPT")) {
			return errNoScript
		}
		return fmt.Errorf("ratelimit: redis: %s", msg)
	case '*':
		nl := bytes.Index(reply, []byte("\r\n"))
		n, err := respInt(reply[1:nl])
		ok := err == nil && n == 2*int64(len(calls))
		rest := reply[nl+2:]
		for i := 0; ok && i < 2*len(calls); i++ {
			var line []byte
			line, rest, ok = bytes.Cut(rest, []byte("\r\n"))
			if !ok || len(line) < 2 || line[0] != ':' {
				ok = false
				break
			}
			v, err := strconv.ParseInt(string(line[1:]), 10, 64)
			calls[i/2].vals[i%2], ok = v, err == nil
		}
		if ok && len(rest) == 0 {
			return nil
		}
	}
	return fmt.Errorf("ratelimit: redis: unexpected script reply %.100q", bytes.TrimSpace(reply))
}
