package split

import (
	"errors"
	"math"

	"github.com/paulmach/orb"
)

// convex is a convex ring, counter-clockwise, without its closing point.
type convex []orb.Point

var errNotConvex = errors.New("not a convex polygon without holes (only those are supported as grid tiles)")

// newConvex checks that p is one convex ring and orients it.
func newConvex(p orb.Polygon) (convex, error) {
	if len(p) != 1 || len(p[0]) < 4 {
		return nil, errNotConvex
	}
	r := p[0]
	pts := append(convex(nil), r[:len(r)-1]...)
	if signedArea(pts) < 0 {
		for i, j := 0, len(pts)-1; i < j; i, j = i+1, j-1 {
			pts[i], pts[j] = pts[j], pts[i]
		}
	}
	n := len(pts)
	for i := range pts {
		a, b, c := pts[i], pts[(i+1)%n], pts[(i+2)%n]
		if cross(a, b, c) < -1e-9*scale(a, b, c) {
			return nil, errNotConvex
		}
	}
	return pts, nil
}

func scale(ps ...orb.Point) float64 {
	s := 0.0
	for _, p := range ps {
		s = max(s, math.Abs(p[0]), math.Abs(p[1]))
	}
	return s * s
}

// cross is the z of (b-a) x (c-a): positive when c is left of a->b.
func cross(a, b, c orb.Point) float64 {
	return (b[0]-a[0])*(c[1]-a[1]) - (b[1]-a[1])*(c[0]-a[0])
}

// signedArea is the shoelace area of an open ring, positive when
// counter-clockwise.
func signedArea(pts []orb.Point) float64 {
	s := 0.0
	for i := range pts {
		p, q := pts[i], pts[(i+1)%len(pts)]
		s += p[0]*q[1] - q[0]*p[1]
	}
	return s / 2
}

// clipRing clips an open ring (any shape) to the convex ring c with the
// Sutherland-Hodgman algorithm. The result may have edges running along
// c's boundary where the ring leaves and re-enters it, but its area is
// the area of the intersection.
func (c convex) clipRing(ring []orb.Point) []orb.Point {
	out := ring
	n := len(c)
	for i := range c {
		if len(out) == 0 {
			return nil
		}
		a, b := c[i], c[(i+1)%n]
		in := out
		out = make([]orb.Point, 0, len(in)+4)
		for j := range in {
			p, q := in[j], in[(j+1)%len(in)]
			pin, qin := cross(a, b, p) >= 0, cross(a, b, q) >= 0
			if pin {
				out = append(out, p)
			}
			if pin != qin {
				out = append(out, intersect(a, b, p, q))
			}
		}
	}
	return out
}

// intersect is where segment p-q crosses the line through a and b.
func intersect(a, b, p, q orb.Point) orb.Point {
	dp, dq := cross(a, b, p), cross(a, b, q)
	t := dp / (dp - dq)
	return orb.Point{p[0] + t*(q[0]-p[0]), p[1] + t*(q[1]-p[1])}
}

// overlap is the area the polygons share with c.
func (c convex) overlap(mp orb.MultiPolygon) float64 {
	total := 0.0
	for _, p := range mp {
		for i, r := range p {
			if len(r) < 4 {
				continue
			}
			a := math.Abs(signedArea(c.clipRing(r[:len(r)-1])))
			if i == 0 {
				total += a
			} else {
				total -= a
			}
		}
	}
	return total
}
