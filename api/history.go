package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// historyPosition is the cursor payload of a history page.
type historyPosition struct {
	LastUpdated int64  `json:"t"`
	Type        string `json:"y"`
	ID          string `json:"i"`
	Version     int64  `json:"v"`
}

// history serves instance, type and system history, newest first.
func (s *Server) history(req *request, p pathParams) error {
	c := req.c
	ctx := c.Request.Context()
	hq := store.HistoryQuery{ID: p.id}
	base := s.cfg.BaseURL + "/_history"
	if p.typ != nil {
		hq.Type = p.typ.Name
		base = s.cfg.BaseURL + "/" + p.typ.Name + "/_history"
		if p.id != "" {
			base = s.cfg.BaseURL + "/" + p.typ.Name + "/" + p.id + "/_history"
			if _, err := s.store.Get(ctx, p.typ.Name, p.id); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fail(kindNotFound, "%s/%s is not known to this server", p.typ.Name, p.id)
				}
				return err
			}
		}
	}
	values, aerr := parseQuery(c.Request.URL.RawQuery, "the query string")
	if aerr != nil {
		return aerr
	}
	applied := url.Values{}
	count := s.cfg.DefaultCount
	var notes []fhir.Issue
	if v := values.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fail(kindBadValue, "_count=%s is not a whole number of 1 or more", v).at("_count")
		}
		if n > s.cfg.MaxCount {
			notes = append(notes, fhir.Issue{Severity: "information", Code: "informational",
				Diagnostics: "_count=" + v + " is above this server's maximum page size; " + strconv.Itoa(s.cfg.MaxCount) + " was used"})
			n = s.cfg.MaxCount
		}
		count = n
		applied.Set("_count", strconv.Itoa(n))
	}
	if v := values.Get("_since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fail(kindBadValue, "_since=%s is not an instant such as 2024-01-31T09:00:00Z (a time zone is required)", v).at("_since")
		}
		hq.Since = t
		applied.Set("_since", v)
	}
	for k := range values {
		switch k {
		case "_count", "_since", "_format", "_pretty", cursorParam:
		default:
			notes = append(notes, fhir.Issue{Severity: "warning", Code: "not-supported",
				Diagnostics: "the history parameter " + strconv.Quote(k) + " is not supported and was ignored"})
		}
	}
	scope := base + "?" + applied.Encode()
	if cur := values.Get(cursorParam); cur != "" {
		var pos historyPosition
		if err := s.cursors.open(cursorScope(req, scope), cur, &pos); err != nil {
			return err
		}
		hq.After = &store.HistoryPosition{LastUpdated: time.UnixMilli(pos.LastUpdated).UTC(), Type: pos.Type, ID: pos.ID, VersionID: pos.Version}
	}
	versions, more, err := s.visibleHistory(req, hq, count+1)
	if err != nil {
		return err
	}
	bundle := fhir.NewBundle("history")
	bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "self", URL: pageLink(scope, "")})
	if len(versions) > count {
		versions = versions[:count]
		last := versions[len(versions)-1]
		more = &store.HistoryPosition{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
	}
	if more != nil {
		// A page cut short by the scan bound has fewer entries than _count, and a next link all the same.
		next, err := s.cursors.sign(cursorScope(req, scope), historyPosition{LastUpdated: more.LastUpdated.UnixMilli(), Type: more.Type, ID: more.ID, Version: more.VersionID})
		if err != nil {
			return internal(err)
		}
		bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "next", URL: pageLink(scope, next)})
	}
	for _, v := range versions {
		req.touch(v)
		bundle.Entry = append(bundle.Entry, s.historyEntry(v))
	}
	if len(notes) > 0 {
		bundle.Entry = append(bundle.Entry, fhir.BundleEntry{Resource: fhir.OperationOutcome(notes...), Search: &fhir.EntrySearch{Mode: "outcome"}})
	}
	return s.writeBundle(c, bundle)
}

// historyEntry describes one version the way the spec asks: the request that made it (POST for the first
// version, DELETE for a tombstone, PUT otherwise) and its outcome.
func (s *Server) historyEntry(v store.Resource) fhir.BundleEntry {
	e := fhir.BundleEntry{
		FullURL: s.cfg.BaseURL + "/" + v.Type + "/" + v.ID,
		Response: &fhir.EntryResponse{
			Status:       "200 OK",
			Etag:         etag(v.VersionID),
			LastModified: v.LastUpdated.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		},
		Request: &fhir.EntryRequest{Method: http.MethodPut, URL: v.Type + "/" + v.ID},
	}
	switch {
	case v.Deleted:
		e.Request.Method = http.MethodDelete
		e.Response.Status = "204 No Content"
	case v.VersionID == 1:
		e.Request.Method = http.MethodPost
		e.Request.URL = v.Type
		e.Response.Status = "201 Created"
	}
	if !v.Deleted {
		e.Resource = json.RawMessage(v.Body)
	}
	return e
}
