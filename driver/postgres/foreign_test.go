package postgres_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/postgres"
)

// serverTable tells the conformance suite how to look at a table.
var serverTable = drivertest.ServerTable{Snapshot: snapshot, Name: tableName}

func tableName(location string) string {
	_, table, _ := postgres.ParseLocation(location)
	return "table " + table
}

// connect opens a plain connection to location's database, as another
// program (psql, pandas) would.
func connect(ctx context.Context, location string) (*pgx.Conn, string, error) {
	conn, table, err := postgres.ParseLocation(location)
	if err != nil {
		return nil, "", err
	}
	c, err := pgx.Connect(ctx, conn)
	return c, table, err
}

// writeForeign writes a table as psql or pandas' to_sql would: the given
// columns only, typed from their values (text for strings), nothing else.
func writeForeign(location string, columns []string, rows [][]any) error {
	ctx := context.Background()
	c, table, err := connect(ctx, location)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var ddl []string
	for i, col := range columns {
		typ := "text"
		for _, r := range rows {
			switch r[i].(type) {
			case int64:
				typ = "bigint"
			case float64:
				typ = "double precision"
			}
		}
		ddl = append(ddl, pgx.Identifier{col}.Sanitize()+" "+typ)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE "+pgx.Identifier{table}.Sanitize()+" ("+strings.Join(ddl, ", ")+")"); err != nil {
		return err
	}
	_, err = c.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
	return err
}

// snapshot is the table's columns with their types, its rows in physical
// order, and the tables beside it.
func snapshot(ctx context.Context, location string) ([]byte, error) {
	c, table, err := connect(ctx, location)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	var b strings.Builder
	rows, err := c.Query(ctx, `SELECT attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, pgx.Identifier{table}.Sanitize())
	if err != nil {
		return nil, err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(&b, cols)
	rows, err = c.Query(ctx, "SELECT t::text FROM "+pgx.Identifier{table}.Sanitize()+" t ORDER BY ctid")
	if err != nil {
		return nil, err
	}
	vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(&b, vals)
	rows, err = c.Query(ctx, "SELECT relname FROM pg_class WHERE relname LIKE $1 ORDER BY 1", table+"%")
	if err != nil {
		return nil, err
	}
	rels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	fmt.Fprintln(&b, rels)
	return []byte(b.String()), err
}
