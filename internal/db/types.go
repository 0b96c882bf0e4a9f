package db

import (
	"encoding/json"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ctrader/ctrader/internal/jsonvalue"
)

// registerTypes teaches a connection's type map two things. It sends
// uuid.UUID as the sixteen bytes it is: without that pgx goes through the
// type's driver.Valuer, a string, a failed binary encoding, a parse back, for
// every value and every element of a uuid array. And it reads json and jsonb
// numbers as json.Number, so a payload's 64-bit id or long decimal comes back
// with every digit instead of rounded through float64.
func registerTypes(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan}, m.TryWrapEncodePlanFuncs...)
	m.RegisterType(&pgtype.Type{Name: "json", OID: pgtype.JSONOID,
		Codec: &pgtype.JSONCodec{Marshal: json.Marshal, Unmarshal: jsonvalue.Decode}})
	m.RegisterType(&pgtype.Type{Name: "jsonb", OID: pgtype.JSONBOID,
		Codec: &pgtype.JSONBCodec{Marshal: json.Marshal, Unmarshal: jsonvalue.Decode}})
}

func tryWrapUUIDEncodePlan(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	switch value.(type) {
	case uuid.UUID:
		return &uuidEncodePlan{}, [16]byte{}, true
	case *uuid.UUID:
		// pgx does not look behind a pointer that is a driver.Valuer
		// itself, as *uuid.UUID is: a nullable uuid (and every element of
		// a []*uuid.UUID) would take the string round trip.
		return &uuidPointerEncodePlan{}, [16]byte{}, true
	}
	return nil, nil, false
}

type uuidEncodePlan struct{ next pgtype.EncodePlan }

func (p *uuidEncodePlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *uuidEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode([16]byte(value.(uuid.UUID)), buf)
}

type uuidPointerEncodePlan struct{ next pgtype.EncodePlan }

func (p *uuidPointerEncodePlan) SetNext(next pgtype.EncodePlan) { p.next = next }

// Encode writes NULL for a nil pointer (a nil buffer, in pgx's terms).
func (p *uuidPointerEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	id := value.(*uuid.UUID)
	if id == nil {
		return nil, nil
	}
	return p.next.Encode([16]byte(*id), buf)
}
