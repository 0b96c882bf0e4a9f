// Package patch applies the fields of a PATCH request: a nil field leaves the
// current value as it is.
package patch

// Set replaces *dst with *v when v is not nil.
func Set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
