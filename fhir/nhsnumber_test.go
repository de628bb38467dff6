package fhir

import (
	"errors"
	"testing"
)

func TestCheckNHSNumberNamesTheFailedCheck(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"9000000009", nil},
		{"9912003071", nil},
		{"9482807146", nil},
		{"4447685222", ErrNHSNumberCheckDigit}, // the NHS login EIS sample is not a valid number
		{"8527685222", ErrNHSNumberCheckDigit},
		{"900000000", ErrNHSNumberLength},
		{"90000000091", ErrNHSNumberLength},
		{"", ErrNHSNumberLength},
		{"900 000 0009", ErrNHSNumberDigits},
		{"90000000A9", ErrNHSNumberDigits},
		{"1000000010", ErrNHSNumberCheckTen}, // 1*10 + 1*2 = 12; 12 % 11 = 1; 11-1 = 10
	}
	for _, tt := range tests {
		if got := CheckNHSNumber(tt.in); !errors.Is(got, tt.want) {
			t.Errorf("CheckNHSNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
