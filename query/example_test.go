package query_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	_ "github.com/openeo-batch/worker/driver/sqlite" // jobs.db tables
	"github.com/openeo-batch/worker/query"
	"github.com/openeo-batch/worker/tableconv"
)

// Open a job table read-only, whatever its store, and read rows with SQL.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "query-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	location := filepath.Join(dir, "jobs.db")
	t := &tableconv.Table{Columns: []string{"tile", "year"}, Rows: [][]any{{"31UFS", int64(2020)}, {"31UFT", int64(2021)}}}
	if _, err := tableconv.Create(ctx, location, t); err != nil {
		log.Fatal(err)
	}

	db, err := query.Open(ctx, location)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	res, err := db.Select(ctx, "SELECT tile, status FROM jobs WHERE year > ? ORDER BY tile", 2020)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Columns)
	for _, r := range res.Rows {
		fmt.Println(r...)
	}
	// Statements that would change the table are refused.
	_, err = db.Select(ctx, "DELETE FROM jobs")
	fmt.Println(err)
	// Output:
	// [tile status]
	// 31UFT not_started
	// the query only reads the table, and this is a DELETE
}
