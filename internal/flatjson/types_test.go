//lint:file-ignore U1000 unexported fields are what encoding/json and flatjson must ignore

package flatjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Types shared by the tests.

type args struct {
	N    int     `json:"n"`
	Name string  `json:"name"`
	OK   bool    `json:"ok"`
	F    float64 `json:"f"`
	P    *int    `json:"p"`
}

type (
	namedInt    int
	namedStr    string
	namedFloat  float32
	namedPtrInt *int
)

type allKinds struct {
	B    bool
	S    string
	I    int
	I8   int8
	I16  int16
	I32  int32
	I64  int64
	U    uint
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	UP   uintptr
	F32  float32
	F64  float64
	PB   *bool
	PS   *string
	PI   *int
	PU8  *uint8
	PF32 *float32
	NI   namedInt
	NS   namedStr
	NF   namedFloat
	PNI  *namedInt
	NP   namedPtrInt
	//lint:ignore SA5008 an invalid tag name is what is tested: the Go name is used
	Bad int `json:"a'b"`
	//lint:ignore SA5008 "-," names a field "-", which is what is tested
	Dash int `json:"-,"`
	Skip int `json:"-"`
	Opt  int `json:",omitempty"`

	hidden int
	ignore map[string]int // unexported: ignored whatever its type
}

// folds exercises case-insensitive key matching, including a fold collision
// (first field in declaration order wins) and non-ASCII names.
type folds struct {
	Lower  int `json:"ab"`
	Upper  int `json:"AB"`
	Count  int
	LongS  int `json:"ſ"` // U+017F folds to 'S'
	Umlaut int `json:"ü"`
}

type kelvin struct {
	K int `json:"K"` // U+212A KELVIN SIGN folds to 'K'
}

type omits struct {
	A int         `json:"a,omitempty"`
	B string      `json:"b,omitempty"`
	C *int        `json:"c,omitempty"`
	D float64     `json:"d,omitzero"`
	E bool        `json:"e,omitzero"`
	F float64     `json:"f,omitempty"`
	G namedInt    `json:",omitempty"`
	H *string     `json:"h,omitzero"`
	I uint8       `json:"i,omitempty,omitzero"`
	J float32     `json:"j,omitempty"`
	K namedPtrInt `json:"k,omitempty"`
}

type jsonUnmarshaler int

func (*jsonUnmarshaler) UnmarshalJSON([]byte) error { return nil }

type textUnmarshaler string

func (*textUnmarshaler) UnmarshalText([]byte) error { return nil }

type jsonMarshaler int

func (jsonMarshaler) MarshalJSON() ([]byte, error) { return []byte("1"), nil }

type textMarshaler string

func (*textMarshaler) MarshalText() ([]byte, error) { return []byte("t"), nil }

type zeroer int

func (zeroer) IsZero() bool { return true }

type selfUnmarshaler struct{ N int }

func (*selfUnmarshaler) UnmarshalJSON([]byte) error { return nil }

type selfMarshaler struct{ N int }

func (selfMarshaler) MarshalJSON() ([]byte, error) { return []byte("{}"), nil }

// anyF has empty interface fields, which decode as with UseNumber.
type (
	namedAny interface{}
	anyF     struct {
		V any `json:"value"`
		N namedAny
		S string
	}
)

// Types that are not flat, or flat only for one direction.
type (
	embedded    struct{ args }
	embeddedPtr struct{ *args }
	embeddedInt struct{ namedInt }
	stringOpt   struct {
		N int `json:",string"`
	}
	unmarshalerF struct{ U jsonUnmarshaler }
	textUnmarsh  struct{ U *textUnmarshaler }
	marshalerF   struct{ M jsonMarshaler }
	textMarsh    struct{ M textMarshaler }
	dupGoName    struct {
		X int
		Y int `json:"X"`
	}
	nestedStruct struct{ A args }
	sliceF       struct{ A []int }
	bytesF       struct{ A []byte }
	arrayF       struct{ A [2]int }
	mapF         struct{ A map[string]int }
	stringerF    struct{ A fmt.Stringer }
	ptrIfaceF    struct{ A *any }
	ptrPtrF      struct{ A **int }
	ptrStructF   struct{ A *args }
	timeF        struct{ T time.Time }
	numberF      struct{ N json.Number }
	funcF        struct{ F func() }
	complexF     struct{ C complex128 }
	omitZeroer   struct {
		Z zeroer `json:",omitzero"`
	}
	plainZeroer struct{ Z zeroer }
	htmlName    struct {
		A int `json:"a<b"`
	}
	unicodeName struct {
		A int `json:"é"`
	}
	unexportedOK struct {
		N int
		m map[string]int
		s []any
		X []int `json:"-"`
	}
	empty struct{}
)

// dupTagType has two fields tagged "x"; it is built at run time because go vet
// rejects such a struct literal.
var dupTagType = reflect.StructOf([]reflect.StructField{
	{Name: "A", Type: reflect.TypeFor[int](), Tag: `json:"x"`},
	{Name: "B", Type: reflect.TypeFor[int](), Tag: `json:"x"`},
})
