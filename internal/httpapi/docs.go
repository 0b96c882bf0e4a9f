package httpapi

import (
	"net/http"

	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5emb"
)

// mountDocs serves Swagger UI at /docs with its assets embedded in the binary,
// so the page works without internet access.
func mountDocs(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	docs := v5emb.NewHandlerWithConfig(swgui.Config{
		Title:       "ctrader API",
		SwaggerJSON: "/openapi.json",
		BasePath:    "/docs/",
		ShowTopBar:  false,
	})
	mux.Handle("/docs/", guard(docs))
	mux.Handle("GET /docs", http.RedirectHandler("/docs/", http.StatusMovedPermanently))
}
