package config

// Access log formats (AccessLog.Format).
const (
	// AccessLogJSON is one JSON object per line, its fields those of
	// AccessLogFields (docs/logs.md).
	AccessLogJSON = "json"
	// AccessLogCombined is the Apache and nginx "combined" format, for
	// classic log tooling.
	AccessLogCombined = "combined"

	DefaultAccessLogFormat = AccessLogJSON
)
