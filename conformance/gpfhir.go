package conformance

// answered is a request that got an answer, kept for the gpfhir profile's audit checks.
type answered struct {
	rid, method, url string
}

// gpfhirChecks are the checks of --profile gpfhir.
func (s *suite) gpfhirChecks() {}
