package seed

// Code systems and extension URLs used by the generated resources.
const (
	sdsUserIDSystem   = "https://fhir.nhs.uk/Id/sds-user-id"
	gmcNumberSystem   = "https://fhir.hl7.org.uk/Id/gmc-number"
	snomedSystem      = "http://snomed.info/sct"
	dmdSystem         = "https://dmd.nhs.uk"
	orgTypeSystem     = "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-OrganisationType-1"
	serviceCatSystem  = "http://terminology.hl7.org/CodeSystem/service-category"
	serviceTypeSystem = "http://terminology.hl7.org/CodeSystem/service-type"
	apptTypeSystem    = "http://terminology.hl7.org/CodeSystem/v2-0276"
	cancelSystem      = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
	courseSystem      = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
	medCategorySystem = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
	ucumSystem        = "http://unitsofmeasure.org"

	nhsNumberVerificationURL    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
	nhsNumberVerificationSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
	repeatInformationURL        = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
)

// OnlineBookableExtension marks a Schedule, and every Slot of it, as published for online booking by
// patients (valueBoolean true) or kept for reception and clinician booking only (valueBoolean false).
// Both values are written explicitly, so a filter can tell "not bookable online" from "not marked".
const OnlineBookableExtension = "https://gpfhir.example/StructureDefinition/online-bookable"

type practiceDef struct {
	ods, name, line, town, outward, phone string
}

// The three demo practices. The ODS codes have the real GP practice shape (letter + 5 digits); the names,
// addresses and telephone numbers are fictional (01632 960xxx is Ofcom's drama range).
var practiceDefs = []practiceDef{
	{"A81001", "Riverside Medical Practice", "12 Bridge Road", "Stockton-on-Tees", "TS18", "01632 960101"},
	{"B82005", "Moorland Health Centre", "3 Station Parade", "Harrogate", "HG1", "01632 960202"},
	{"P81002", "Castle Street Surgery", "40 Castle Street", "Preston", "PR1", "01632 960303"},
}

type clinicianName struct{ given, family, gender string }

var clinicianNames = []clinicianName{
	{"Aisha", "Rahman", "female"}, {"Tom", "Hargreaves", "male"}, {"Eleanor", "Price", "female"},
	{"Samuel", "Adeyemi", "male"}, {"Catrin", "Morgan", "female"}, {"Rajesh", "Kumar", "male"},
	{"Helen", "Fitzgerald", "female"}, {"Marek", "Kowalski", "male"}, {"Fiona", "MacLeod", "female"},
	{"Daniel", "Osei", "male"}, {"Sarah", "Whitfield", "female"}, {"Imran", "Siddiqui", "male"},
	{"Lucy", "Bramwell", "female"}, {"Gareth", "Pryce", "male"},
}

var (
	femaleGiven = []string{"Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Freya", "Emily", "Sophie",
		"Charlotte", "Aisha", "Priya", "Hannah", "Megan", "Ruth", "Margaret", "Joan", "Eileen", "Fatima", "Niamh"}
	maleGiven = []string{"Oliver", "George", "Harry", "Jack", "Noah", "Mohammed", "Arthur", "Leo", "Thomas",
		"James", "William", "Daniel", "Ravi", "Kwame", "Peter", "David", "Graham", "Brian", "Alan", "Ewan"}
	// Accented names exercise accent-insensitive name search ("zoe" should find "Zoë").
	femaleAccented = []string{"Zoë", "Siân", "Chloé", "Renée", "Anaïs", "Órla"}
	maleAccented   = []string{"José", "Seán", "Iñaki", "Björn", "Rónán", "Loïc"}
	families       = []string{"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
		"Patel", "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
		"Khan", "Hughes", "Clarke", "Jackson", "Wood", "Harris", "Edwards", "Turner", "Cooper", "Hill",
		"Okafor", "Nowak", "Begum", "O'Brien"}
	familiesAccented = []string{"Núñez", "Müller", "Gómez", "Lefèvre", "Ó Briain"}
	streets          = []string{"High Street", "Station Road", "Church Lane", "Mill Road", "Victoria Street",
		"Park Avenue", "Queen's Road", "Albert Terrace", "Orchard Close", "Meadow Way"}
)

// postcodeLetters are the letters allowed in the inward part of a UK postcode.
const postcodeLetters = "ABDEFGHJLNPQRSTUWXYZ"

type code struct{ code, display string }

// Vaccines as dm+d products (SNOMED CT UK drug extension), the form UK Core's VaccineCode value set uses.
var (
	vaxFluChild  = code{"27114211000001105", "Fluenz Tetra vaccine nasal suspension 0.2ml unit dose (AstraZeneca UK Ltd)"}
	vaxFluAdult  = code{"34680411000001107", "Quadrivalent influenza vaccine (split virion, inactivated) suspension for injection 0.5ml pre-filled syringes (Sanofi Pasteur)"}
	vaxFluOver65 = code{"38973211000001108", "Fluad Tetra vaccine suspension for injection 0.5ml pre-filled syringes (Seqirus UK Ltd)"}
	vaxCovid     = code{"43111411000001101", "Comirnaty JN.1 COVID-19 mRNA Vaccine 30micrograms/0.3ml dose dispersion for injection multidose vials (Pfizer Ltd)"}
	vaxShingles  = code{"39655511000001105", "Shingrix (Herpes Zoster) adjuvanted recombinant vaccine powder and suspension for suspension for injection 0.5ml vials (GlaxoSmithKline UK Ltd)"}
	vaxPneumo    = code{"40600011000001101", "Prevenar 20 vaccine suspension for injection 0.5ml pre-filled syringes (Pfizer Ltd)"}
	vaxMMR       = []code{
		{"13968211000001108", "M-M-RVAXPRO vaccine powder and solvent for suspension for injection 0.5ml pre-filled syringes (Merck Sharp & Dohme (UK) Ltd)"},
		{"34925111000001104", "Priorix vaccine powder and solvent for solution for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)"},
	}
	vaxMenB     = code{"23584211000001109", "Bexsero vaccine suspension for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)"}
	vaxHPV      = code{"33493111000001108", "Gardasil 9 vaccine suspension for injection 0.5ml pre-filled syringes (Merck Sharp & Dohme (UK) Ltd)"}
	vaxTdIPV    = code{"7374511000001107", "Revaxis vaccine suspension for injection 0.5ml pre-filled syringes (Sanofi)"}
	vaxPertussi = code{"26267211000001100", "Boostrix-IPV suspension for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)"}
)

// repeatMed is a medicine commonly kept on repeat, with its dm+d code and usual instructions.
type repeatMed struct {
	med              code
	dosage           string
	quantity         int
	unit             string
	minAge           int
	repeatsAllowed   int
	supplyDurationDs int
}

var repeatMeds = []repeatMed{
	{code{"39733011000001106", "Atorvastatin 20mg tablets"}, "Take ONE tablet at night", 28, "tablet", 40, 12, 28},
	{code{"325278007", "Metformin 500mg tablets"}, "Take ONE tablet twice a day with food", 56, "tablet", 30, 12, 28},
	{code{"319283006", "Amlodipine 5mg tablets"}, "Take ONE tablet once a day", 28, "tablet", 40, 12, 28},
	{code{"320176004", "Salbutamol 100micrograms/dose inhaler CFC free"}, "Inhale TWO puffs when required for breathlessness, up to FOUR times a day", 1, "inhaler", 5, 6, 30},
	{code{"3113111000001106", "Pulmicort 100 Turbohaler"}, "Inhale ONE dose twice a day. Rinse mouth after use", 1, "inhaler", 12, 6, 30},
	{code{"322236009", "Paracetamol 500mg tablets"}, "Take ONE or TWO tablets up to FOUR times a day when required. Maximum 8 tablets in 24 hours", 100, "tablet", 16, 6, 25},
}
