package auth

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestForwardAsk(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Remote-User", "alice")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	f, err := NewForward(ForwardOptions{URL: srv.URL + "/verify?rd=1", Timeout: 2 * time.Second, MaxConns: 4, SendHeaders: []string{"Cookie", "Authorization"}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h fasthttp.RequestHeader
	h.SetMethod("DELETE")
	h.SetRequestURI("/items/1?x=2")
	h.Set("Cookie", "session=abc")
	h.Set("Authorization", "Bearer t")
	h.Set("X-Other", "not sent")
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	err = f.Ask(ForwardRequest{Header: &h, Proto: []byte("https"), Host: []byte("app.example"), URI: []byte("/items/1?x=2"), ClientIP: []byte("192.0.2.7")}, resp)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 || string(resp.Header.Peek("Remote-User")) != "alice" {
		t.Errorf("answer: got %d %q; want 200 alice", resp.StatusCode(), resp.Header.Peek("Remote-User"))
	}
	for name, want := range map[string]string{
		"X-Forwarded-Method": "DELETE", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example",
		"X-Forwarded-Uri": "/items/1?x=2", "X-Forwarded-For": "192.0.2.7", "Cookie": "session=abc",
		"Authorization": "Bearer t", "X-Other": "",
	} {
		if v := got.Header.Get(name); v != want {
			t.Errorf("%s: got %q; want %q", name, v, want)
		}
	}
	if got.Method != "DELETE" || got.URL.RequestURI() != "/verify?rd=1" {
		t.Errorf("request: got %s %s; want DELETE /verify?rd=1", got.Method, got.URL.RequestURI())
	}
}

func TestForwardFails(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + ln.Addr().String() + "/verify"
	ln.Close()
	tests := []struct{ name, url string }{{"slow", slow.URL}, {"down", downURL}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewForward(ForwardOptions{URL: tt.url, Timeout: 300 * time.Millisecond, MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var h fasthttp.RequestHeader
			h.SetMethod("GET")
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			start := time.Now()
			err = f.Ask(ForwardRequest{Header: &h}, resp)
			if !errors.Is(err, ErrForward) {
				t.Errorf("got %v; want ErrForward", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v; want about the timeout (300ms)", d)
			}
		})
	}
}

// TestForwardStaleConnection: a service that closes its idle keep-alive
// connections (without saying so) costs a retry, not a failed check.
func TestForwardStaleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(buf); err != nil {
					return
				}
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
				time.Sleep(20 * time.Millisecond) // then close, idle, unannounced
			}()
		}
	}()
	f, err := NewForward(ForwardOptions{URL: "http://" + ln.Addr().String() + "/", Timeout: 2 * time.Second, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 3 {
		var h fasthttp.RequestHeader
		h.SetMethod("POST")
		resp := fasthttp.AcquireResponse()
		err := f.Ask(ForwardRequest{Header: &h}, resp)
		if err != nil || resp.StatusCode() != 200 {
			t.Errorf("check %d: got %d, %v; want 200", i, resp.StatusCode(), err)
		}
		fasthttp.ReleaseResponse(resp)
		time.Sleep(100 * time.Millisecond)
	}
}
