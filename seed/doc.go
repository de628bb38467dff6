// Package seed generates the demo data set that `gpfhir serve --dev` loads into an empty store.
//
// A developer, a tester and the conformance suite should all see the same practices, patients and
// appointment book, so the data is a pure function of Options: the same Seed and Now give the same
// bytes on every machine (random streams come from PCG seeded per named part, times are rendered in
// Europe/London from embedded zone data, and nothing reads the clock). The data is shaped after GP
// Connect and UK Core rather than being generic FHIR, because the point of dev mode is to exercise
// what gpfhir is for: NHS numbers that pass Modulus 11 (from the 999 test range, never issued to real
// people), repeat authorisations with their issues, and an appointment book with free slots to book.
//
// Online bookability: not every appointment is offered online, and more slots published online is one
// of the outcomes gpfhir exists to measure. A Schedule, and each of its Slots, carries the extension
// OnlineBookableExtension (https://gpfhir.example/StructureDefinition/online-bookable) with
// valueBoolean true or false. An extension was chosen over meta.tag because meta belongs to the server,
// and over Schedule.serviceCategory because category says what kind of care a slot is for, not who may
// book it.
//
// Schedules name a Location and a Practitioner as actors: FHIR R4 does not allow an Organization there.
// Cancelled appointments keep their slot reference, and that slot is free again, as in GP Connect.
//
// Patients are first described as profiles (patientProfile) and only then written out, so that special
// cases (identity proofing level, proxy grants, access levels, redacted entries) can be added as profile
// fields without touching the writers of unrelated resources.
package seed
