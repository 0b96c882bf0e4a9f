// Package ctrader is the Go client of the ctrader HTTP API.
//
// The types and methods in client.gen.go are generated from the committed
// OpenAPI document (openapi/openapi-3.0.yaml) by oapi-codegen, pinned in the
// module's go.mod; regenerate them with `go tool task sdk` after changing the
// API. The rest of the package is written by hand: [New] builds a client whose
// calls return every answer of 400 or more as a [*ProblemError],
// [WithBearerToken] authenticates it, [WithIdempotencyKey] makes a post safe to
// retry, and [ClientWithResponses.WaitForEvent] waits until an event has been
// processed.
package ctrader

//go:generate go tool oapi-codegen -config oapi-codegen.yaml -o client.gen.go ../../../openapi/openapi-3.0.yaml
