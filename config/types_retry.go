package config

// DefaultMaxConnectRetries caps the default of Upstream.ConnectRetries (one
// less than the number of targets): each try may wait out the connect
// timeout.
const DefaultMaxConnectRetries = 4

// DefaultConnectRetries is ConnectRetries when it is omitted: one less than
// the number of targets, at most DefaultMaxConnectRetries.
func (u *Upstream) DefaultConnectRetries() int {
	return max(0, min(len(u.Targets)-1, DefaultMaxConnectRetries))
}

// ConnectRetryCount is ConnectRetries, or its default when omitted (a
// Config built in code, without ApplyDefaults).
func (u *Upstream) ConnectRetryCount() int {
	if u.ConnectRetries != nil {
		return *u.ConnectRetries
	}
	return u.DefaultConnectRetries()
}
