package online

// Redaction: the practice hides a resource from patients and proxies with a meta.security label (NHS
// England's redaction guidance), and a searchset that left something out says so without saying what.
const (
	// ConfidentialitySystem is HL7 v3 Confidentiality; R (restricted) and V (very restricted) redact.
	ConfidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	// SecurityLabelSystem is this project's security label code system; redacted-online redacts.
	SecurityLabelSystem = "https://gpfhir.example/CodeSystem/security-label"
	// RedactedOnlineCode is the practice's "hide from online access" label (NHS England's redaction).
	RedactedOnlineCode = "redacted-online"
	// WarningCodeSystem holds GP Connect's list warning codes, of which confidential-items says that
	// some items were withheld.
	WarningCodeSystem     = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListWarningCode-1"
	ConfidentialItemsCode = "confidential-items"
	ConfidentialItemsText = "Items excluded due to confidentiality and/or patient preferences."
)

// RedactionLabels are the meta.security codings that hide a resource from patients and proxies, as
// system|code. Any one of them is enough.
var RedactionLabels = [][2]string{
	{ConfidentialitySystem, "R"},
	{ConfidentialitySystem, "V"},
	{SecurityLabelSystem, RedactedOnlineCode},
}

// IsRedacted reports whether a resource tree carries a redaction label.
func IsRedacted(tree map[string]any) bool {
	meta, _ := tree["meta"].(map[string]any)
	labels, _ := meta["security"].([]any)
	for _, l := range labels {
		m, _ := l.(map[string]any)
		for _, r := range RedactionLabels {
			if str(m, "system") == r[0] && str(m, "code") == r[1] {
				return true
			}
		}
	}
	return false
}
