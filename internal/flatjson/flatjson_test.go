package flatjson

import (
	"reflect"
	"testing"
)

func TestEligibility(t *testing.T) {
	tests := []struct {
		typ            reflect.Type
		decode, encode bool
		why            string
	}{
		{reflect.TypeFor[args](), true, true, "scalars and a pointer to a scalar"},
		{reflect.TypeFor[allKinds](), true, true, "every scalar kind, named scalars, ignored fields"},
		{reflect.TypeFor[omits](), true, true, "omitempty and omitzero"},
		{reflect.TypeFor[unexportedOK](), true, true, "unexported and \"-\" fields are ignored whatever their type"},
		{reflect.TypeFor[empty](), true, true, "no fields"},
		{reflect.TypeFor[folds](), true, false, "non-ASCII names are decoded but not encoded"},
		{reflect.TypeFor[unicodeName](), true, false, "non-ASCII name"},
		{reflect.TypeFor[htmlName](), true, false, "json.Marshal HTML-escapes '<' in the name"},
		{reflect.TypeFor[embedded](), false, false, "embedded struct"},
		{reflect.TypeFor[embeddedPtr](), false, false, "embedded pointer"},
		{reflect.TypeFor[embeddedInt](), false, false, "embedded scalar"},
		{reflect.TypeFor[stringOpt](), false, false, ",string option"},
		{reflect.TypeFor[unmarshalerF](), false, true, "field's pointer implements json.Unmarshaler"},
		{reflect.TypeFor[textUnmarsh](), false, true, "pointer field implements encoding.TextUnmarshaler"},
		{reflect.TypeFor[marshalerF](), true, false, "field implements json.Marshaler"},
		{reflect.TypeFor[textMarsh](), true, false, "field's pointer implements encoding.TextMarshaler"},
		{reflect.TypeFor[selfUnmarshaler](), false, true, "struct implements json.Unmarshaler"},
		{reflect.TypeFor[selfMarshaler](), true, false, "struct implements json.Marshaler"},
		{dupTagType, false, false, "two fields tagged with the same name"},
		{reflect.TypeFor[dupGoName](), false, false, "tag name equals another field's Go name"},
		{reflect.TypeFor[nestedStruct](), false, false, "nested struct"},
		{reflect.TypeFor[ptrStructF](), false, false, "pointer to struct"},
		{reflect.TypeFor[ptrPtrF](), false, false, "pointer to pointer"},
		{reflect.TypeFor[sliceF](), false, false, "slice"},
		{reflect.TypeFor[bytesF](), false, false, "[]byte"},
		{reflect.TypeFor[arrayF](), false, false, "array"},
		{reflect.TypeFor[mapF](), false, false, "map"},
		{reflect.TypeFor[anyF](), true, false, "empty interfaces are decoded (as with UseNumber) but not encoded"},
		{reflect.TypeFor[stringerF](), false, false, "interface with methods"},
		{reflect.TypeFor[ptrIfaceF](), false, false, "pointer to an interface"},
		{reflect.TypeFor[timeF](), false, false, "time.Time"},
		{reflect.TypeFor[numberF](), false, false, "json.Number"},
		{reflect.TypeFor[funcF](), false, false, "func"},
		{reflect.TypeFor[complexF](), false, false, "complex"},
		{reflect.TypeFor[omitZeroer](), true, false, "omitzero with an IsZero method"},
		{reflect.TypeFor[plainZeroer](), true, true, "IsZero method without omitzero"},
		{reflect.TypeFor[int](), false, false, "not a struct"},
		{reflect.TypeFor[*args](), false, false, "pointer to struct"},
	}
	for _, tt := range tests {
		if got := NewStructDecoder(tt.typ) != nil; got != tt.decode {
			t.Errorf("NewStructDecoder(%v) != nil is %v, want %v: %s", tt.typ, got, tt.decode, tt.why)
		}
		if got := NewStructEncoder(tt.typ) != nil; got != tt.encode {
			t.Errorf("NewStructEncoder(%v) != nil is %v, want %v: %s", tt.typ, got, tt.encode, tt.why)
		}
	}
}

func TestIsValidTag(t *testing.T) {
	for _, s := range []string{"a", "A1", "é", "a-b", "a b", "$", "ſ", "K"} {
		if !isValidTag(s) {
			t.Errorf("isValidTag(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a'b", `a"b`, `a\b`, "a,b", "a`b", "\x00", "\xff"} {
		if isValidTag(s) {
			t.Errorf("isValidTag(%q) = true", s)
		}
	}
}

func TestFoldName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "ABC"},
		{"a_B-c1", "A_B-C1"},
		{"K", "K"}, // Kelvin sign
		{"ſ", "S"}, // long s
		{"ü", "Ü"},
		{"Ü", "Ü"},
	}
	for _, tt := range tests {
		if got := foldName(tt.in); got != tt.want {
			t.Errorf("foldName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
