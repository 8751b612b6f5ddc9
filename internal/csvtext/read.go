package csvtext

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Records reads every record of the CSV file held in data, each cell
// exactly as written: bytes that are not UTF-8 and \r\n line breaks
// inside quoted cells included. encoding/csv checks the syntax (its
// *csv.ParseError names the line and column of an error) and splits the
// records, but it turns a \r\n inside a quoted cell into \n: the cells of
// a record that holds one are read again from data. Records with fewer or
// more cells than the first are an error; empty lines are skipped.
func Records(data []byte) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	var out [][]string
	line, start := 1, int64(0) // the line number at offset start
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		end := r.InputOffset()
		raw := data[start:end]
		if bytes.Contains(raw, []byte("\r\n")) {
			for i, v := range rec {
				if !strings.Contains(v, "\n") {
					continue
				}
				l, c := r.FieldPos(i)
				exact, ok := unquote(raw[offset(raw, line, l, c):])
				if !ok || strings.ReplaceAll(exact, "\r\n", "\n") != v {
					return nil, fmt.Errorf("line %d, column %d: cannot read the cell exactly", l, c)
				}
				rec[i] = exact
			}
		}
		out = append(out, rec)
		line += bytes.Count(raw, []byte("\n"))
		start = end
	}
}

// offset returns the offset in raw, whose first byte is on line first, of
// line l, column c (both from 1, columns in bytes).
func offset(raw []byte, first, l, c int) int {
	off := 0
	for ; first < l; first++ {
		off += bytes.IndexByte(raw[off:], '\n') + 1
	}
	return off + c - 1
}

// unquote returns the quoted cell that b starts with, "" read as ".
func unquote(b []byte) (string, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	var sb strings.Builder
	for i := 1; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return "", false
		}
		sb.Write(b[i : i+j])
		i += j + 1
		if i < len(b) && b[i] == '"' {
			sb.WriteByte('"')
			i++
			continue
		}
		return sb.String(), true
	}
}
