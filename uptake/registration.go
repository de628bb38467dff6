package uptake

import (
	"strings"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

// RegistrationParams are the Patient search parameters that say where a patient is registered, the ones
// the access policy confines GP systems by.
var RegistrationParams = []string{"organization", "general-practitioner"}

// Registered returns the id of the Organization a patient is registered at, from the Patient's index
// entries for RegistrationParams: the managing organization, or else the first general practitioner that
// is an Organization. A patient is counted at one practice only, so that list sizes add up.
func Registered(entries []fhir.IndexEntry) string {
	first := ""
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Value, "Organization/")
		if !ok || id == "" {
			continue
		}
		if e.Param == "organization" {
			return id
		}
		if e.Param == "general-practitioner" && first == "" {
			first = id
		}
	}
	return first
}

// PracticeCode returns the ODS code of an Organization from its index entries for "identifier"; "" when it
// has none, and is then not a practice the figures report on.
func PracticeCode(entries []fhir.IndexEntry) string {
	for _, e := range entries {
		if e.Param == "identifier" && e.System == fhir.ODSOrganizationSystem && e.Value != "" {
			return e.Value
		}
	}
	return ""
}

// Enabled is which online services a patient's access levels allow, as POMI counts enabled patients.
type Enabled struct {
	// Appointments: booking and cancelling (appointments access manage).
	Appointments bool
	// Prescriptions: ordering repeats (prescriptions access manage).
	Prescriptions bool
	// Record: the detailed coded record (record access detailed or full).
	Record bool
}

// EnabledBy reads Enabled from the access levels the practice set (online.PracticeAccess).
func EnabledBy(a online.Access) Enabled {
	return Enabled{
		Appointments:  a.Appointments >= online.ServiceManage,
		Prescriptions: a.Prescriptions >= online.ServiceManage,
		Record:        a.Record >= online.RecordDetailed,
	}
}

// Any reports whether at least one service is enabled (POMI Total_Pat_Enbld).
func (e Enabled) Any() bool { return e.Appointments || e.Prescriptions || e.Record }
