package config

// docs/config.md, the reference of every field, is generated from this
// package's types, doc comments and defaults; a test in
// internal/configdoc fails when it is stale.
//go:generate go run ./internal/configdoc -dir . -o ../docs/config.md

// docs/logs.md, the reference of the access log, is generated from
// AccessLogFields; a test in internal/logdoc fails when it is stale.
//go:generate go run ./internal/logdoc -o ../docs/logs.md
