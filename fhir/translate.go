package fhir

import (
	"fmt"
	"strings"
	"sync"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	r4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Translating search-parameter expressions. A parameter's R4 FHIRPath expression is its one source of
// truth: Translate derives the Paths the extractor walks from it, typing every step from google/fhir/go's
// R4 proto descriptors (the same definitions jsonformat validates against), so that the JSON element names
// of choice types, the datatype at the end of a path, the implicit code system of a required binding and
// the target types of a reference are read from the R4 definitions rather than written again by hand.
//
// The expressions of R4 search parameters use a small part of FHIRPath: paths, unions (|), casts
// ("as T", ".as(T)", ".ofType(T)"), ".where(resolve() is T)" and ".where(field='value')". Terms naming
// another resource type (the shared clinical-* parameters list many types) are skipped. Anything else is
// reported as an error, so that an expression the extractor cannot honour is never served half-way.

// Translation is what Translate derives from an expression.
type Translation struct {
	Paths []Path
	// Targets are the resource types the references may point at, from the R4 definitions (narrowed by
	// resolve() is T).
	Targets []string
}

// Translate derives the extractor Paths of expr, an R4 search-parameter expression, for resource type typ.
// The error says why the expression cannot be served: an unknown element, or an element of a datatype
// the index does not hold for a parameter of type pt.
func Translate(typ string, pt ParamType, expr string) (Translation, error) {
	root, ok := resourceDescriptor(typ)
	if !ok {
		return Translation{}, fmt.Errorf("%s is not an R4 resource type", typ)
	}
	var out Translation
	seenTarget := map[string]bool{}
	for _, term := range splitTop(expr, '|') {
		term = strings.TrimSpace(term)
		term = unparen(term)
		var cast string
		if i := strings.LastIndex(term, " as "); i > 0 && !strings.ContainsAny(term[i:], "()") {
			term, cast = strings.TrimSpace(term[:i]), strings.TrimSpace(term[i+4:])
			term = unparen(term)
		}
		steps := splitTop(term, '.')
		if len(steps) == 0 || steps[0] != typ && steps[0] != "Resource" && steps[0] != "DomainResource" {
			continue
		}
		if cast != "" {
			steps = append(steps, "as("+cast+")")
		}
		paths, targets, err := translateSteps(root, steps[1:])
		if err != nil {
			return Translation{}, fmt.Errorf("%s: %w", strings.TrimSpace(term), err)
		}
		kept := 0
		for _, p := range paths {
			if pt == ParamToken && p.DataType == TypeString {
				// A token on a string matches it exactly, as a code.
				p.DataType = TypeCode
			}
			if err := fits(pt, p.DataType); err != nil {
				if p.anyType {
					// An uncast choice selects every type it may hold; those the parameter's type
					// cannot match (Immunization.occurrenceString for a date) match nothing.
					continue
				}
				return Translation{}, fmt.Errorf("%s: %w", strings.TrimSpace(term), err)
			}
			p.anyType = false
			out.Paths = append(out.Paths, p)
			kept++
		}
		if kept == 0 {
			return Translation{}, fmt.Errorf("%s: no type it may hold is indexed for %s parameters", strings.TrimSpace(term), pt)
		}
		for _, t := range targets {
			if !seenTarget[t] {
				seenTarget[t] = true
				out.Targets = append(out.Targets, t)
			}
		}
	}
	if len(out.Paths) == 0 {
		return Translation{}, fmt.Errorf("no term of %q applies to %s", expr, typ)
	}
	return out, nil
}

// fits says whether the index can hold values of datatype dt for a parameter of type pt.
func fits(pt ParamType, dt string) error {
	ok := false
	switch pt {
	case ParamToken:
		ok = dt == TypeCode || dt == TypeCoding || dt == TypeCodeableConcept || dt == TypeIdentifier ||
			dt == TypeBoolean || dt == TypeContactPoint || dt == TypeString || dt == TypeURI
	case ParamString:
		ok = dt == TypeString || dt == TypeHumanName || dt == TypeAddress
	case ParamDate:
		ok = dt == TypeDate || dt == TypePeriod
	case ParamReference:
		ok = dt == TypeReference
	case ParamURI:
		ok = dt == TypeURI
	}
	if !ok {
		return fmt.Errorf("%s values are not indexed for %s parameters", dt, pt)
	}
	return nil
}

// pathState is one route being translated.
type pathState struct {
	msg      protoreflect.MessageDescriptor
	field    protoreflect.FieldDescriptor // the last field stepped into
	elements []string
	path     Path
	anyType  bool // stepped into every type of an uncast choice
}

func translateSteps(root protoreflect.MessageDescriptor, steps []string) ([]Path, []string, error) {
	cur := []pathState{{msg: root}}
	for i, step := range steps {
		var next []pathState
		for _, st := range cur {
			out, err := translateStep(st, step, i+1 < len(steps) && isCast(steps[i+1]))
			if err != nil {
				return nil, nil, err
			}
			next = append(next, out...)
		}
		cur = next
	}
	var paths []Path
	var targets []string
	for _, st := range cur {
		if st.msg == nil {
			return nil, nil, fmt.Errorf("the expression ends at no element")
		}
		if isChoice(st.msg) {
			return nil, nil, fmt.Errorf("choice element %s needs a type", strings.Join(st.elements, "."))
		}
		dt, system, systems, err := dataType(st.msg)
		if err != nil && !st.anyType {
			return nil, nil, err
		}
		p := st.path
		p.Elements = strings.Join(st.elements, ".")
		if p.Child == "" {
			p.DataType = dt
		}
		if dt == TypeCode {
			p.CodeSystem, p.CodeSystems = system, systems
		}
		p.anyType = st.anyType
		if dt == TypeReference && st.field != nil {
			if p.RefType != "" {
				targets = append(targets, p.RefType)
			} else {
				targets = append(targets, referenceTypes(st.field)...)
			}
		}
		paths = append(paths, p)
	}
	return paths, targets, nil
}

func isCast(step string) bool {
	return strings.HasPrefix(step, "as(") || strings.HasPrefix(step, "ofType(")
}

func translateStep(st pathState, step string, castNext bool) ([]pathState, error) {
	switch {
	case isCast(step):
		want := step[strings.IndexByte(step, '(')+1 : len(step)-1]
		if !isChoice(st.msg) {
			name, _, _, _ := dataType(st.msg)
			if strings.EqualFold(name, want) || strings.EqualFold(string(st.msg.Name()), want) {
				return []pathState{st}, nil
			}
			return nil, nil // a cast to another type selects nothing
		}
		for _, f := range choiceFields(st.msg) {
			if strings.EqualFold(string(f.Message().Name()), want) {
				return []pathState{choiceStep(st, f)}, nil
			}
		}
		return nil, fmt.Errorf("%s has no choice of type %s", strings.Join(st.elements, "."), want)
	case strings.HasPrefix(step, "where(resolve() is ") && strings.HasSuffix(step, ")"):
		st.path.RefType = strings.TrimSuffix(strings.TrimPrefix(step, "where(resolve() is "), ")")
		return []pathState{st}, nil
	case strings.HasPrefix(step, "where(") && strings.HasSuffix(step, ")"):
		cond := step[len("where(") : len(step)-1]
		field, val, ok := strings.Cut(cond, "=")
		field, val = strings.TrimSpace(field), strings.TrimSpace(val)
		if !ok || len(val) < 2 || val[0] != '\'' || val[len(val)-1] != '\'' || !isIdent(field) {
			return nil, fmt.Errorf("the filter %s is not supported", step)
		}
		st.path.WhereField, st.path.WhereValue = field, val[1:len(val)-1]
		return []pathState{st}, nil
	case !isIdent(step):
		return nil, fmt.Errorf("the FHIRPath step %s is not supported", step)
	}
	if st.path.WhereField != "" || st.path.RefType != "" {
		return nil, fmt.Errorf("a step after a filter is not supported")
	}
	f := fieldByJSON(st.msg, step)
	if f == nil || f.Kind() != protoreflect.MessageKind {
		return nil, fmt.Errorf("%s has no element %s", st.msg.Name(), step)
	}
	st.field = f
	st.msg = f.Message()
	st.elements = append(append([]string(nil), st.elements...), step)
	if isChoice(st.msg) && !castNext {
		// An uncast choice selects every type it may hold.
		var out []pathState
		for _, cf := range choiceFields(st.msg) {
			cs := choiceStep(st, cf)
			cs.anyType = true
			out = append(out, cs)
		}
		return out, nil
	}
	return []pathState{st}, nil
}

// choiceStep steps into the choice of type f: in JSON, the element name with the type as suffix.
func choiceStep(st pathState, f protoreflect.FieldDescriptor) pathState {
	last := len(st.elements) - 1
	st.elements = append(append([]string(nil), st.elements[:last]...), st.elements[last]+upperFirst(f.JSONName()))
	st.msg = f.Message()
	st.field = f
	return st
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func fieldByJSON(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		if f := fields.Get(i); f.JSONName() == name {
			return f
		}
	}
	return nil
}

func isChoice(md protoreflect.MessageDescriptor) bool {
	return proto.GetExtension(md.Options(), apb.E_IsChoiceType).(bool)
}

func choiceFields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	var out []protoreflect.FieldDescriptor
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		if f := fields.Get(i); f.Kind() == protoreflect.MessageKind {
			out = append(out, f)
		}
	}
	return out
}

func referenceTypes(f protoreflect.FieldDescriptor) []string {
	ts, _ := proto.GetExtension(f.Options(), apb.E_ValidReferenceType).([]string)
	return ts
}

// datatypes maps the R4 core datatype messages to what the extractor walks.
var datatypes = map[protoreflect.Name]string{
	"CodeableConcept": TypeCodeableConcept, "Coding": TypeCoding, "Identifier": TypeIdentifier,
	"Reference": TypeReference, "ContactPoint": TypeContactPoint, "HumanName": TypeHumanName,
	"Address": TypeAddress, "Period": TypePeriod, "String": TypeString, "Markdown": TypeString,
	"Date": TypeDate, "DateTime": TypeDate, "Instant": TypeDate, "Uri": TypeURI, "Url": TypeURI,
	"Canonical": TypeURI, "Oid": TypeURI, "Uuid": TypeURI, "Boolean": TypeBoolean, "Code": TypeCode, "Id": TypeCode,
}

// dataType names the extractor datatype of a message, and for a coded element (google/fhir/go gives each
// required binding its own message with an enum) the code system of its codes: one system, or, for a value
// set drawing on several, the system of each code.
func dataType(md protoreflect.MessageDescriptor) (string, string, map[string]string, error) {
	if md.FullName().Parent() == "google.fhir.r4.core" {
		if dt, ok := datatypes[md.Name()]; ok {
			return dt, "", nil, nil
		}
	}
	if v := md.Fields().ByName("value"); v != nil && v.Kind() == protoreflect.EnumKind {
		system, systems := codeSystems(v.Enum())
		return TypeCode, system, systems, nil
	}
	if v := md.Fields().ByName("value"); v != nil && v.Kind() == protoreflect.StringKind && strings.HasSuffix(string(md.Name()), "Code") {
		// A code bound to an external value set (mime types, languages) is a string code without a system.
		return TypeCode, "", nil, nil
	}
	return string(md.Name()), "", nil, fmt.Errorf("%s values are not indexed", md.Name())
}

// codeSystems reads the code system of a bound enum: the enum's own, or the one every value comes from;
// when the values come from several, a map from each code to its system.
func codeSystems(ed protoreflect.EnumDescriptor) (string, map[string]string) {
	if s, _ := proto.GetExtension(ed.Options(), apb.E_FhirCodeSystemUrl).(string); s != "" {
		return s, nil
	}
	bySystem := map[string]string{}
	one := ""
	vals := ed.Values()
	for i := 0; i < vals.Len(); i++ {
		v := vals.Get(i)
		s, _ := proto.GetExtension(v.Options(), apb.E_SourceCodeSystem).(string)
		if s == "" {
			continue
		}
		code, _ := proto.GetExtension(v.Options(), apb.E_FhirOriginalCode).(string)
		if code == "" {
			code = strings.ReplaceAll(strings.ToLower(string(v.Name())), "_", "-")
		}
		bySystem[code] = s
		if one == "" {
			one = s
		}
	}
	for _, s := range bySystem {
		if s != one {
			return "", bySystem
		}
	}
	return one, nil
}

var resourceDescriptors = sync.OnceValue(func() map[string]protoreflect.MessageDescriptor {
	out := map[string]protoreflect.MessageDescriptor{}
	oneof := (&r4pb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	fields := oneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		md := fields.Get(i).Message()
		out[string(md.Name())] = md
	}
	return out
})

func resourceDescriptor(typ string) (protoreflect.MessageDescriptor, bool) {
	md, ok := resourceDescriptors()[typ]
	return md, ok
}

// splitTop splits s at sep outside parentheses and quotes.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, quote, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			quote = !quote
		case quote:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unparen removes parentheses that enclose the whole of s.
func unparen(s string) string {
	for len(s) >= 2 && s[0] == '(' && s[len(s)-1] == ')' {
		depth := 0
		whole := true
		for i := 0; i < len(s)-1; i++ {
			switch s[i] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				whole = false
				break
			}
		}
		if !whole {
			return s
		}
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}
