package seed

// Practice is a seeded GP practice, for tools that need to know who is in the demo data (the dev identity
// provider seeds one GP-system client per practice).
type Practice struct {
	ODS            string
	OrganizationID string
	Name           string
}

// Person is a seeded patient, or the proxy user, as the dev identity provider lists them.
type Person struct {
	// PatientID is the Patient resource id; empty for the proxy user, who has no record here.
	PatientID   string
	NHSNumber   string
	Name        string
	PracticeODS string
	// ProxyFor is the NHS number of the patient the proxy user cares for.
	ProxyFor string
	// ExpiredFor is the NHS number of a patient the proxy user used to act for: their grant has ended.
	ExpiredFor string
	// State describes a patient's online-access state when it is not the defaults, in plain words.
	State string
}

// Directory is who the demo data set holds.
type Directory struct {
	Practices []Practice
	Patients  []Person
	// Proxy is a carer (a parent) of one seeded patient. Their own NHS number is from the 999 test range
	// and is held by no seeded Patient.
	Proxy Person
}

// People returns the practices and patients that Generate(o) writes, without building the resources. The
// NHS numbers, ids and practices do not depend on o.Now.
func People(o Options) Directory {
	g := newGen(o)
	g.buildPractices()
	g.buildPatients()
	var d Directory
	for _, p := range g.practices {
		d.Practices = append(d.Practices, Practice{ODS: p.def.ods, OrganizationID: p.orgID, Name: p.def.name})
	}
	for _, p := range g.patients {
		d.Patients = append(d.Patients, Person{PatientID: p.id, NHSNumber: p.nhsNumber,
			Name: p.given + " " + p.family, PracticeODS: p.practice.def.ods, State: stateOf(p)})
	}
	// The proxy's number is the next valid one after the patients' numbers, so it is held by no Patient.
	d.Proxy = Person{NHSNumber: g.proxyNHSNumber(), Name: "Pat Carer (proxy)", ProxyFor: youngest(g.patients)}
	for _, gr := range g.grants {
		if gr.end.Before(g.now) {
			d.Proxy.ExpiredFor = gr.patient.nhsNumber
		}
	}
	return d
}

// stateOf describes a patient's special online-access state for the login page.
func stateOf(p *patientProfile) string {
	switch {
	case p.redactFirstImmunization:
		return "one immunisation redacted for online access"
	case p.access == nil:
		return ""
	case p.access.record == "none":
		return "the practice has not switched on record access"
	case p.access.from != "":
		return "full record from " + p.access.from + ", prescriptions view only"
	case p.access.appointments == "none":
		return "no online appointments or prescriptions"
	}
	return ""
}

// youngest is the NHS number of the youngest seeded patient: the natural case of a parent as proxy.
func youngest(ps []*patientProfile) string {
	best := ps[0]
	for _, p := range ps[1:] {
		if p.birthDate.After(best.birthDate) {
			best = p
		}
	}
	return best.nhsNumber
}
