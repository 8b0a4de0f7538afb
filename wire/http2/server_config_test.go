package http2

import (
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// TestConfigFrom checks a listener's settings reach the Server's Config,
// and that zero fields take the config package's defaults.
func TestConfigFrom(t *testing.T) {
	l := &config.Listener{
		HTTP2: config.HTTP2{MaxConcurrentStreams: 7, MaxHeaderListSize: 8192, MaxStreamsPerConnection: 9,
			MaxStreamsPerIP: 10, MaxResetsPerSecond: 11, MaxControlFramesPerSecond: 12},
		Limits: config.Limits{IdleTimeout: config.Duration(13 * time.Second), BodyTimeout: ptr(config.Duration(14 * time.Second)),
			SendTimeout: ptr(config.Duration(15 * time.Second))},
	}
	got := ConfigFrom(l)
	want := Config{MaxConcurrentStreams: 7, MaxHeaderListSize: 8192, MaxStreamsPerConnection: 9,
		MaxStreamsPerIP: 10, MaxResetsPerSecond: 11, MaxControlFramesPerSecond: 12, IdleTimeout: 13 * time.Second,
		BodyTimeout: 14 * time.Second, SendTimeout: 15 * time.Second}
	if got.Logger != nil || got.CountError != nil {
		t.Fatalf("got a logger or counter; want none")
	}
	if got.MaxConcurrentStreams != want.MaxConcurrentStreams || got.MaxHeaderListSize != want.MaxHeaderListSize ||
		got.MaxStreamsPerConnection != want.MaxStreamsPerConnection || got.MaxStreamsPerIP != want.MaxStreamsPerIP ||
		got.MaxResetsPerSecond != want.MaxResetsPerSecond || got.MaxControlFramesPerSecond != want.MaxControlFramesPerSecond ||
		got.IdleTimeout != want.IdleTimeout || got.BodyTimeout != want.BodyTimeout || got.SendTimeout != want.SendTimeout {
		t.Errorf("got %+v; want %+v", got, want)
	}
	d := Config{}.withDefaults()
	if d.MaxConcurrentStreams != config.DefaultHTTP2MaxConcurrentStreams || d.MaxHeaderListSize != config.DefaultHTTP2MaxHeaderListSize ||
		d.MaxStreamsPerConnection != config.DefaultHTTP2MaxStreamsPerConnection || d.MaxStreamsPerIP != config.DefaultHTTP2MaxStreamsPerIP ||
		d.MaxResetsPerSecond != config.DefaultHTTP2MaxResetsPerSecond || d.MaxControlFramesPerSecond != config.DefaultHTTP2MaxControlFramesPerSecond ||
		d.IdleTimeout != config.DefaultIdleTimeout {
		t.Errorf("got defaults %+v; want the config package's", d)
	}
}

func ptr[T any](v T) *T { return &v }
