package fhir

// OnlineBookableExtension marks a Schedule and its Slots as published for online booking by patients
// (valueBoolean true); anything else is for reception and clinician booking only. It is declared here
// rather than with the booking rules in package online because the search index (the online-bookable
// parameter) reads it, and fhir imports no project package.
const OnlineBookableExtension = "https://gpfhir.example/StructureDefinition/online-bookable"

// Extensions returns the extensions of tree with the given url.
func Extensions(tree map[string]any, url string) []map[string]any {
	var out []map[string]any
	for _, e := range Walk(tree, "extension") {
		if m, ok := e.(map[string]any); ok && str(m, "url") == url {
			out = append(out, m)
		}
	}
	return out
}

// ExtensionValue returns the value[x] element named key (such as "valueBoolean") of the first extension
// of tree with the given url.
func ExtensionValue(tree map[string]any, url, key string) (any, bool) {
	for _, e := range Extensions(tree, url) {
		if v, ok := e[key]; ok {
			return v, true
		}
	}
	return nil, false
}
