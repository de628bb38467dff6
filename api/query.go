package api

import (
	"net/url"
	"strings"
)

// Bounds on what one search may ask for. Each parameter becomes a clause of the store query and each OR
// value a term of it; past these the query costs more than any real client needs, and SQLite refuses
// queries far larger ("expression tree too large", "too many SQL variables"), which must never reach
// the caller as a 500. A search over a bound is a 400 that names it; the CapabilityStatement's
// documentation (docs/api.md) states them.
const (
	// maxQueryParams bounds the parameters of one query string or _search body, counted before parsing.
	maxQueryParams = 200
	// maxRepeats bounds how often one parameter may be repeated (ANDed).
	maxRepeats = 20
	// maxOrValues bounds the comma-separated values of one parameter value (ORed).
	maxOrValues = 100
	// maxHas bounds the _has parameters of a search, nested ones counted one by one.
	maxHas = 5
)

// parseQuery reads a query string, refusing one that does not parse instead of dropping what it could
// not read: a search run without the filters it lost would answer with everything the caller may see.
// where names the query in the refusal.
func parseQuery(raw, where string) (url.Values, *apiError) {
	raw = strings.TrimPrefix(raw, "?")
	if raw == "" {
		return url.Values{}, nil
	}
	if n := strings.Count(raw, "&") + 1; n > maxQueryParams {
		return nil, fail(kindTooCostly, "%s has %d parameters; this server takes at most %d", where, n, maxQueryParams)
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fail(kindBadValue, "%s is not a valid query string (%v); encode reserved characters such as %% and ; as %%25 and %%3B", where, err)
	}
	return values, nil
}

// checkSearchBounds applies the bounds above to a search's parameters.
func checkSearchBounds(values url.Values) *apiError {
	total, has := 0, 0
	for key, vals := range values {
		total += len(vals)
		if len(vals) > maxRepeats {
			return fail(kindTooCostly, "the parameter %s is repeated %d times; a search may repeat one parameter at most %d times",
				key, len(vals), maxRepeats).at(key)
		}
		if n := strings.Count(key, "_has:"); n > 0 {
			has += n * len(vals)
		}
		if key == "_include" || key == "_revinclude" || strings.HasPrefix(key, "_include:") || strings.HasPrefix(key, "_revinclude:") {
			continue
		}
		for _, v := range vals {
			if n := orValues(v); n > maxOrValues {
				return fail(kindTooCostly, "the parameter %s has %d comma-separated values; a search may give one parameter at most %d",
					key, n, maxOrValues).at(key)
			}
		}
	}
	if total > maxQueryParams {
		return fail(kindTooCostly, "the search has %d parameters; this server takes at most %d", total, maxQueryParams)
	}
	if has > maxHas {
		return fail(kindTooCostly, "the search has %d _has parameters; this server takes at most %d", has, maxHas).at("_has")
	}
	return nil
}

// orValues counts the values of a parameter value: separated by commas, except escaped ones (\,).
func orValues(v string) int {
	return strings.Count(v, ",") - strings.Count(v, `\,`) + 1
}
