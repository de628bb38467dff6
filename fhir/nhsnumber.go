package fhir

import (
	"errors"
	"strconv"
)

// NHSNumberSystem is the UK Core identifier system for NHS numbers.
const NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"

// ODSOrganizationSystem is the identifier system of practice (and pharmacy) ODS codes.
const ODSOrganizationSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// The NHS number checks fail in distinct ways, and callers are told which one, because "invalid NHS number"
// alone does not help a clerk who mistyped one digit.
var (
	ErrNHSNumberLength     = errors.New("an NHS number has exactly 10 digits")
	ErrNHSNumberDigits     = errors.New("an NHS number contains only the digits 0-9, with no spaces")
	ErrNHSNumberCheckTen   = errors.New("the Modulus 11 check digit of this NHS number would be 10, so no valid NHS number starts with these 9 digits")
	ErrNHSNumberCheckDigit = errors.New("the last digit of this NHS number does not match its Modulus 11 check digit")
)

// CheckNHSNumber validates an NHS number: 10 digits whose last is the Modulus 11 check digit of the first
// nine (NHS Data Dictionary). It returns one of the ErrNHSNumber* errors, or nil.
func CheckNHSNumber(s string) error {
	if len(s) != 10 {
		for _, c := range s {
			if c < '0' || c > '9' {
				return ErrNHSNumberDigits
			}
		}
		return ErrNHSNumberLength
	}
	for i := 0; i < 10; i++ {
		if s[i] < '0' || s[i] > '9' {
			return ErrNHSNumberDigits
		}
	}
	check, ok := NHSCheckDigit(s[:9])
	if !ok {
		return ErrNHSNumberCheckTen
	}
	if int(s[9]-'0') != check {
		return ErrNHSNumberCheckDigit
	}
	return nil
}

// NHSCheckDigit computes the Modulus 11 check digit for the first nine digits of an NHS number. ok is false
// when the check digit would be 10: such a prefix never forms a valid number. It panics on input that is
// not nine ASCII digits, which is a programming error.
func NHSCheckDigit(nine string) (digit int, ok bool) {
	if len(nine) != 9 {
		panic("fhir: NHSCheckDigit needs 9 digits, got " + strconv.Quote(nine))
	}
	sum := 0
	for i := 0; i < 9; i++ {
		c := nine[i]
		if c < '0' || c > '9' {
			panic("fhir: NHSCheckDigit needs 9 digits, got " + strconv.Quote(nine))
		}
		sum += int(c-'0') * (10 - i)
	}
	check := 11 - sum%11
	switch check {
	case 11:
		return 0, true
	case 10:
		return 0, false
	}
	return check, true
}
