package store

import "fmt"

// CheckWrites refuses what no store may write, before anything is compared with the stored versions:
// ErrInvalidQuery for an AuditEvent, a write without type or id, a version that does not follow the
// expected one, a tombstone with a body or index, an entry without a parameter, a resource twice.
func CheckWrites(writes []Write) error {
	seen := make(map[[2]string]bool, len(writes))
	for i, w := range writes {
		r := w.Resource
		switch {
		case r.Type == AuditEventType:
			return fmt.Errorf("%w: write %d: AuditEvents are appended through audit.Store and never changed", ErrInvalidQuery, i)
		case r.Type == "" || r.ID == "":
			return fmt.Errorf("%w: write %d has no type or id", ErrInvalidQuery, i)
		case w.ExpectVersion < 0 || r.VersionID != w.ExpectVersion+1:
			return fmt.Errorf("%w: write %d of %s/%s: version %d does not follow expected version %d",
				ErrInvalidQuery, i, r.Type, r.ID, r.VersionID, w.ExpectVersion)
		case r.Deleted && (len(r.Body) != 0 || len(w.Index) != 0):
			return fmt.Errorf("%w: write %d of %s/%s: a tombstone has no body and no index", ErrInvalidQuery, i, r.Type, r.ID)
		case seen[[2]string{r.Type, r.ID}]:
			return fmt.Errorf("%w: %s/%s appears twice in one group", ErrInvalidQuery, r.Type, r.ID)
		}
		if err := CheckEntries(r.Type, r.ID, w.Index); err != nil {
			return err
		}
		seen[[2]string{r.Type, r.ID}] = true
	}
	return nil
}

// CheckEntries refuses (ErrInvalidQuery) an index entry without a parameter.
func CheckEntries(typ, id string, index []IndexEntry) error {
	for _, e := range index {
		if e.Param == "" {
			return fmt.Errorf("%w: index entry of %s/%s without a parameter", ErrInvalidQuery, typ, id)
		}
	}
	return nil
}
