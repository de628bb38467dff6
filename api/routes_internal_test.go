package api

import "testing"

func TestParsePathNamesEveryRESTShape(t *testing.T) {
	for _, tc := range []struct {
		path         string
		sh           shape
		typ, id, vid string
		ok           bool
	}{
		{"/", shapeRoot, "", "", "", true},
		{"/metadata", shapeMetadata, "", "", "", true},
		{"/_history", shapeSystemHistory, "", "", "", true},
		{"/$export", shapeSystemOperation, "", "", "export", true},
		{"/$export-poll/j1", shapeExportStatus, "", "j1", "", true},
		{"/$export-poll/j1/f.ndjson", shapeExportFile, "", "j1", "f.ndjson", true},
		{"/$export-poll/j1/f/x", 0, "", "", "", false},
		{"/Patient", shapeType, "Patient", "", "", true},
		{"/Patient/_search", shapeTypeSearch, "Patient", "", "", true},
		{"/Patient/_history", shapeTypeHistory, "Patient", "", "", true},
		{"/Patient/$match", shapeTypeOperation, "Patient", "", "match", true},
		{"/Patient/p1", shapeInstance, "Patient", "p1", "", true},
		{"/Patient/p1/", shapeInstance, "Patient", "p1", "", true},
		{"/Patient/p1/$everything", shapeInstanceOperation, "Patient", "p1", "everything", true},
		{"/Patient/p1/_history", shapeInstanceHistory, "Patient", "p1", "", true},
		{"/Patient/p1/_history/2", shapeVersion, "Patient", "p1", "2", true},
		{"/Patient/p1/_history/2/x", 0, "", "", "", false},
		{"/Patient/p1/x", 0, "", "", "", false},
		{"/a/b/c/d/e/f/g", 0, "", "", "", false},
	} {
		sh, typ, id, vid, ok := parsePath(tc.path)
		if sh != tc.sh || typ != tc.typ || id != tc.id || vid != tc.vid || ok != tc.ok {
			t.Errorf("parsePath(%q) = %v %q %q %q %v; want %v %q %q %q %v", tc.path, sh, typ, id, vid, ok, tc.sh, tc.typ, tc.id, tc.vid, tc.ok)
		}
	}
}
