// Package jsonkeys reads the keys of a JSON object in the order they stand
// in the document, which decoding into a map forgets: a GeoJSON feature's
// properties become table columns in that order.
package jsonkeys

import (
	"bytes"
	"encoding/json"
)

// Object returns the keys of the JSON object raw in document order,
// duplicates included. For text that is not an object it returns nil; for
// an object that breaks off, the keys read until then.
func Object(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return keys
		}
	}
	return keys
}
