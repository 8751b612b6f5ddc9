package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/openeo-batch/worker/split"
	"github.com/openeo-batch/worker/tableconv"
)

var splitCmd = command{
	name: "split",
	usage: `
Usage: worker split --area FILE|BBOX --tile-size SIZE --projection EPSG --to TABLE
       worker split --area FILE|BBOX --grid GRID.geojson --to TABLE

Cuts an area of interest into tiles, one row per tile, as the openEO Python
client's split_area does: square tiles of SIZE in the unit of the projection
EPSG (metres for UTM, degrees for 4326), clipped at the edges of the area's
bounding box, the tiles that do not overlap the area dropped. The grid
starts at the lower-left corner of the area (--align python: where
split_area starts it, x 500000 for UTM and 3857, else 0; y 0). --projection
utm picks the UTM zone of the area's centre. With --grid, the tiles are the
polygons of a predefined grid (a GeoJSON FeatureCollection, whose properties
become columns), kept whole when they overlap the area; its coordinates are
longitude/latitude unless its "crs" member or --projection say otherwise.
A .geojson that split wrote serves as a grid: its tile_id names the tiles,
and its epsg, west, south, east and north are left out where they equal
what split writes (a grid property of one of those names that differs is
kept as grid_<name>).

--area is a GeoJSON file (polygons, longitude/latitude) or a bounding box
west,south,east,north[,crs] (longitude/latitude unless crs, an EPSG code, says
otherwise). The table has the columns tile_id, epsg, west, south, east,
north and geometry: WKT in the grid's projection, as split_area returns it
(a process parameter that takes GeoJSON wants longitude/latitude: split in
4326 then, or build a spatial_extent from west..north and epsg). TABLE's
name picks its format, as for export (.geojson, .csv, .db, .parquet,
.duckdb); it must not exist, and 'worker init --from' or '--db' take it.
A job table (.csv, .db, .parquet, .duckdb) also has the manager's 15
columns (id, backend_name, status, ...), as init gives them; a .geojson has
the 7 above (a "crs" member names a projection other than 4326).
Every fault of the inputs (area, grid, size, projection, a --to that is
there already or whose folder is not, a grid none of whose tiles overlaps
the area) is invalid input: exit status 2, nothing written. The projection
must be a 2D horizontal CRS (geographic 2D or projected), and an area must
not cross the antimeridian (split it in two at longitude 180).

Example:
  worker split --area 3.2,50.9,4.1,51.5 --tile-size 20000 --projection utm --to tiles.csv
  worker split --area aoi.geojson --tile-size 0.5 --projection 4326 --to jobs.db
  worker split --area aoi.geojson --grid s2-tiles.geojson --to tiles.geojson
`,
	run: runSplit,
}

func runSplit(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	areaArg := fs.String("area", "", "area to split: a GeoJSON `file` or a bounding box west,south,east,north[,crs] (required)")
	size := fs.Float64("tile-size", 0, "side of a tile in the unit of --projection (metres for UTM)")
	projection := fs.String("projection", "", "`EPSG` code of the grid (32631, EPSG:32631), or utm for the area's UTM zone")
	gridFile := fs.String("grid", "", "a predefined grid: a GeoJSON `file` of tile polygons (instead of --tile-size)")
	align := fs.String("align", "area", "where the grid starts: area (its lower-left corner) or python (as split_area)")
	to := fs.String("to", "", "table `file` to write; its ending picks the format (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	sizeGiven := false
	fs.Visit(func(f *flag.Flag) { sizeGiven = sizeGiven || f.Name == "tile-size" })
	switch {
	case *areaArg == "" || *to == "":
		return usagef("split: --area and --to are required")
	case *gridFile != "" && sizeGiven:
		return usagef("split: --grid and --tile-size exclude each other")
	case *gridFile == "" && sizeGiven && !(*size > 0):
		return usagef("split: --tile-size must be a positive number, not %v", *size)
	case *gridFile == "" && (!sizeGiven || *projection == ""):
		return usagef("split: give --tile-size and --projection, or --grid")
	}
	if err := checkNewFile("split", "--to", *to); err != nil {
		return err
	}
	// Every error from here on, up to the writing, is the inputs' fault:
	// the area, the grid, the projection or size that do not fit them.
	area, err := readArea(*areaArg)
	if err != nil {
		return err
	}
	epsg := 0
	if strings.EqualFold(*projection, "utm") {
		if epsg, err = split.UTMZone(area); err != nil {
			return badInput(fmt.Errorf("split: --area %s: %w", *areaArg, err))
		}
	} else if *projection != "" {
		if epsg, err = split.ParseEPSG(*projection); err != nil {
			return usagef("split: --projection: %v", err)
		}
	}

	var tiling *split.Tiling
	if *gridFile != "" {
		b, err := os.ReadFile(*gridFile)
		if errors.Is(err, os.ErrNotExist) {
			return usagef("split: --grid %s does not exist", *gridFile)
		} else if err != nil {
			return err
		}
		g, err := split.ParseGridFile(b, epsg)
		if err != nil {
			return badInput(fmt.Errorf("%s: %w", *gridFile, err))
		}
		if tiling, err = g.Split(area); err != nil {
			return badInput(fmt.Errorf("split: %w", err))
		}
	} else {
		grid := split.Grid{EPSG: epsg, Size: *size}
		switch *align {
		case "area":
		case "python":
			grid.Align = split.AlignPython
		default:
			return usagef("split: --align is area or python, not %q", *align)
		}
		if tiling, err = grid.Split(area); err != nil {
			return badInput(fmt.Errorf("split: %w", err))
		}
	}
	columns, rows, err := tiling.Table()
	if err != nil {
		return badInput(fmt.Errorf("split: %w", err))
	}
	if len(rows) == 0 {
		// A table of no jobs is no use; the inputs do not meet.
		what := "the grid"
		if *gridFile != "" {
			what = "--grid " + *gridFile
		}
		return badInput(fmt.Errorf("split: no tile of %s overlaps --area %s: nothing written (are both where you expect, in the CRS they say?)", what, *areaArg))
	}
	t := &tableconv.Table{Columns: columns, Rows: rows, EPSG: tiling.EPSG}
	if tableconv.IsGeoJSON(*to) {
		err = tableconv.WriteGeoJSONCRS(*to, t, tiling.EPSG)
	} else {
		_, err = createTable(ctx, *to, t)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", *to, err)
	}
	fmt.Fprintf(stdout, "wrote %d tiles in EPSG:%d to %s\n", len(rows), tiling.EPSG, *to)
	return nil
}

// readArea reads --area: a GeoJSON file when one is there by that name,
// else a bounding box.
func readArea(arg string) (split.Area, error) {
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		b, err := os.ReadFile(arg)
		if err != nil {
			return split.Area{}, err
		}
		a, err := split.ParseGeoJSON(b)
		if err != nil {
			return split.Area{}, badInput(fmt.Errorf("%s: %w", arg, err))
		}
		return a, nil
	}
	if strings.Count(arg, ",") < 3 {
		return split.Area{}, usagef("split: --area %q is neither a file nor a bounding box west,south,east,north[,crs]", arg)
	}
	a, err := split.ParseBBox(arg)
	if err != nil {
		return split.Area{}, usagef("split: --area: %v", err)
	}
	return a, nil
}
