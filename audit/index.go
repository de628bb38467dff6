package audit

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gpfhir/gpfhir/fhir"
)

// EventIndex returns the search-index entries of Event(in): the same entries, in the same order,
// as ExtractBody(Event(in), base). Every request writes an audit record, and rendering the event
// only to decode it again into a tree and walk the AuditEvent parameters' paths cost more than the rest
// of the record; the input already says which values those paths reach. What this mirrors is the
// AuditEvent entry of typeTable, AuditEvent's element layout and the extractor's rules (reference
// normalisation, coding text, first-occurrence de-duplication); TestAuditEventIndexMatchesExtractBody
// holds the three together, so a change to any of them must be made here too.
func EventIndex(in Input, base string) []fhir.IndexEntry {
	x := auditIndexer{base: strings.TrimSuffix(base, "/")}
	patients := in.Patients
	if in.User != nil && in.User.ProxyFor != "" && in.User.PatientID != "" {
		patients = append(patients[:len(patients):len(patients)], in.User.PatientID)
	}
	patients = uniqueSorted(patients)
	proxyByNHSNumber := in.User != nil && in.User.ProxyFor != "" && in.User.PatientID == ""
	hasQuery := in.Query != "" || in.HasQuery

	// The references AuditEvent writes, resolved once: patient reads some of them and agent, entity and
	// source read them again. The client agent, the request id, a proxy's patient named by NHS number and
	// the query entity have no reference, so they index nothing here.
	var user auditRef
	if u := in.User; u != nil && u.PatientID != "" && u.ProxyFor == "" {
		user = x.resolve("Patient/" + u.PatientID)
	}
	server := x.resolve(deviceRef(in.Instance))
	whats := make([]auditRef, 0, len(patients)+len(in.Entities))
	for _, p := range patients {
		whats = append(whats, x.resolve("Patient/"+p))
	}
	for _, e := range in.Entities {
		whats = append(whats, x.resolve(e.Ref()))
	}

	x.out = make([]fhir.IndexEntry, 0, 12+len(whats)*2)

	// recorded is written at millisecond precision in UTC, so its range is that one millisecond, but only
	// for years the four-digit form can carry: others do not parse, and the extractor skips them.
	if y := in.Recorded.UTC().Year(); y >= 0 && y <= 9999 {
		ms := in.Recorded.UnixMilli()
		x.add(fhir.IndexEntry{Param: "date", Low: ms, High: ms})
	}

	x.param()
	x.patientRef(user)
	x.patientRef(server)
	for _, r := range whats {
		x.patientRef(r)
	}

	x.param()
	x.ref("agent", user)
	x.ref("agent", server)

	x.param()
	for _, r := range whats {
		x.ref("entity", r)
	}

	// entity.type holds three codings only, and the entities come grouped by them (the request id, then
	// patients, then resources and the query), so first occurrences follow that order.
	x.param()
	if in.RequestID != "" {
		x.add(auditXReqIDEntry)
	}
	if len(patients) > 0 || proxyByNHSNumber {
		x.add(auditPersonEntry)
	}
	if len(in.Entities) > 0 || hasQuery {
		x.add(auditObjectEntry)
	}

	x.param()
	x.add(fhir.IndexEntry{Param: "action", System: AuditActionSystem, Value: Action(in.Interaction)})
	x.add(fhir.IndexEntry{Param: "outcome", System: AuditOutcomeSystem, Value: Outcome(in.Status)})
	x.add(auditTypeEntry)
	if in.Interaction != "" {
		x.add(fhir.IndexEntry{Param: "subtype", System: RestfulInteraction, Value: jsonString(in.Interaction)})
	}

	x.param()
	x.ref("source", server)

	// Only the user agent has an altId, and only the client agent a name (its id when it has no name).
	x.param()
	if u := in.User; u != nil && u.Subject != "" {
		x.add(fhir.IndexEntry{Param: "altid", Value: jsonString(u.Subject)})
	}
	x.param()
	if u := in.User; u != nil && u.ClientID != "" {
		name := u.ClientName
		if name == "" {
			name = u.ClientID
		}
		name = jsonString(name)
		x.add(fhir.IndexEntry{Param: "agent-name", Value: name, Text: fhir.NormalizeString(name)})
	}
	return x.out
}

// The entries of AuditEvent's fixed codings, their text normalised from the very displays Event
// writes.
var (
	auditXReqIDEntry = auditCodingEntry("entity-type", *entityXReqID)
	auditPersonEntry = auditCodingEntry("entity-type", *entityPerson)
	auditObjectEntry = auditCodingEntry("entity-type", *entityObject)
	auditTypeEntry   = auditCodingEntry("type", aeCoding{System: AuditEventTypeSystem, Code: "rest", Display: "Restful Operation"})
)

func auditCodingEntry(param string, c aeCoding) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, System: c.System, Value: c.Code, Text: fhir.NormalizeString(c.Display)}
}

// auditRef is a reference as the extractor sees it: value is what a reference parameter indexes ("" for
// nothing), typ the resource type of a local reference ("" for an absolute URL elsewhere).
type auditRef struct {
	typ, value string
}

type auditIndexer struct {
	base string
	out  []fhir.IndexEntry
	// from is where the current parameter's entries begin: entries of different parameters never
	// collide, so duplicates are looked for from there only.
	from int
	// seen takes over from a linear scan once a parameter has many entries (a search that touched
	// hundreds of resources).
	seen map[fhir.IndexEntry]struct{}
}

const auditScanLimit = 16

func (x *auditIndexer) param() {
	x.from = len(x.out)
	if x.seen != nil {
		clear(x.seen)
	}
}

// add appends e unless the current parameter already has it, as the extractor keeps first occurrences.
func (x *auditIndexer) add(e fhir.IndexEntry) {
	cur := x.out[x.from:]
	if len(cur) < auditScanLimit {
		for _, c := range cur {
			if c == e {
				return
			}
		}
	} else {
		if len(x.seen) == 0 {
			if x.seen == nil {
				x.seen = make(map[fhir.IndexEntry]struct{}, 2*len(cur))
			}
			for _, c := range cur {
				x.seen[c] = struct{}{}
			}
		}
		if _, dup := x.seen[e]; dup {
			return
		}
		x.seen[e] = struct{}{}
	}
	x.out = append(x.out, e)
}

// resolve applies the extractor's Reference rules to a reference AuditEvent writes.
func (x *auditIndexer) resolve(ref string) auditRef {
	ref = jsonString(ref)
	if typ, id, ok := fhir.LocalRef(ref, x.base); ok {
		if len(typ)+1+len(id) == len(ref) {
			return auditRef{typ: typ, value: ref} // already "Type/id": no need to build it again
		}
		return auditRef{typ: typ, value: typ + "/" + id}
	}
	if fhir.IsAbsoluteURL(ref) {
		return auditRef{value: ref}
	}
	return auditRef{}
}

func (x *auditIndexer) ref(param string, r auditRef) {
	if r.value != "" {
		x.add(fhir.IndexEntry{Param: param, Value: r.value})
	}
}

// patientRef is the patient parameter's where(resolve() is Patient): local Patient references only.
func (x *auditIndexer) patientRef(r auditRef) {
	if r.typ == "Patient" {
		x.add(fhir.IndexEntry{Param: "patient", Value: r.value})
	}
}

// jsonString is s as it comes back from AuditEvent's JSON: encoding/json replaces each byte that is not
// part of valid UTF-8 with U+FFFD.
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// PatientImplied reports whether e is an agent or entity entry that names a local Patient ("Patient/id",
// no system): the patient search parameter (agent.who and entity.what, where resolve() is Patient)
// names the same Patient in the same record, as EventIndex writes it and as AppendAudit checks
// (CheckBatch). A store may therefore find the records of such an entry through their patient entry of
// the same value, and keep no index entry of its own for it: store/sqlite does, since for most records
// these entries repeat the patient's (a patient reading their own record names themselves three times).
func PatientImplied(e fhir.IndexEntry) bool {
	return (e.Param == "agent" || e.Param == "entity") && e.System == "" && IsPatientRef(e.Value)
}

// IsPatientRef reports whether v is a local Patient reference as EventIndex writes one: "Patient/" and an
// id, nothing after it.
func IsPatientRef(v string) bool {
	id, ok := strings.CutPrefix(v, "Patient/")
	return ok && id != "" && !strings.Contains(id, "/")
}

// checkPatientEntries checks that a record's agent and entity entries naming a local Patient carry no
// system and come with the patient entry of the same value (PatientImplied): a store that relies on
// that would otherwise not find the record by its agent or entity.
func checkPatientEntries(entries []fhir.IndexEntry) error {
	// Every request's record is checked: a few entries are scanned, a search's hundreds are mapped.
	var patients map[string]bool
	for _, e := range entries {
		if (e.Param != "agent" && e.Param != "entity") || !IsPatientRef(e.Value) {
			continue
		}
		if e.System != "" {
			return fmt.Errorf("its %s entry %s has a system (%s): a reference has none", e.Param, e.Value, e.System)
		}
		if patients == nil && len(entries) > auditScanLimit {
			patients = map[string]bool{}
			for _, p := range entries {
				if p.Param == "patient" && p.System == "" {
					patients[p.Value] = true
				}
			}
		}
		found := patients[e.Value]
		if patients == nil {
			found = slices.ContainsFunc(entries, func(p fhir.IndexEntry) bool {
				return p.Param == "patient" && p.System == "" && p.Value == e.Value
			})
		}
		if !found {
			return fmt.Errorf("its %s entry %s has no patient entry of the same value: the patient parameter names every agent and entity that is a Patient", e.Param, e.Value)
		}
	}
	return nil
}
