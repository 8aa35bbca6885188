package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Plot geometry (pixels).
const (
	plotWidth   = 960
	chartHeight = 300
	marginLeft  = 70
	marginRight = 170
	marginTop   = 58
	chartGap    = 70
)

// plotColors are the line colors, one per region (cycled).
func plotColors() []string {
	return []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}
}

// WriteSVG draws two charts of r's series as a standalone SVG document:
// the fraction of each region's capacity out of service over time, and
// the number of hosts on the new kernel over time.
func WriteSVG(w io.Writer, r *Result) error {
	sr := r.Series
	bw := bufio.NewWriter(w)
	height := marginTop + 2*chartHeight + chartGap + 50
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("kroll fleet simulation: %d hosts, %d datacenters, %s", r.Hosts, r.Datacenters, scenarioName(r))
	fmt.Fprintf(bw, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", marginLeft, html.EscapeString(title))

	xmax := 1.0
	if n := len(sr.Hours); n > 0 {
		xmax = max(sr.Hours[n-1], 1e-9)
	}
	// Chart 1: capacity out of service per region, in percent.
	ymax := 0.0
	for _, s := range sr.OutOfService {
		for _, v := range s {
			ymax = max(ymax, 100*v)
		}
	}
	ymax = niceCeil(max(ymax, 1))
	top := marginTop
	axes(bw, top, xmax, ymax, "capacity out of service per region (%)", "%")
	colors := plotColors()
	for ri, s := range sr.OutOfService {
		c := colors[ri%len(colors)]
		polyline(bw, top, sr.Hours, s, 100, xmax, ymax, c)
		fmt.Fprintf(bw, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", plotWidth-marginRight+15, top+15+16*ri, c, html.EscapeString(sr.Regions[ri]))
	}
	// Chart 2: hosts on the new kernel.
	top += chartHeight + chartGap
	ymax2 := niceCeil(float64(max(sr.Hosts, 1)))
	axes(bw, top, xmax, ymax2, "hosts on the new kernel", "")
	nk := make([]float64, len(sr.NewKernel))
	for i, v := range sr.NewKernel {
		nk[i] = float64(v)
	}
	polyline(bw, top, sr.Hours, nk, 1, xmax, ymax2, colors[0])
	fmt.Fprintf(bw, `<text x="%d" y="%d" text-anchor="middle">hours since the rollout started</text>`+"\n",
		marginLeft+(plotWidth-marginLeft-marginRight)/2, top+chartHeight+38)
	fmt.Fprintln(bw, `</svg>`)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sim: write svg: %w", err)
	}
	return nil
}

func scenarioName(r *Result) string {
	parts := []string{"normal cycle"}
	if r.Expedite {
		parts[0] = "expedited (CVE)"
	}
	parts = append(parts, r.Reboot)
	if r.FailPct > 0 {
		parts = append(parts, fmt.Sprintf("%g%% failing health", r.FailPct))
	}
	if r.LostPct > 0 {
		parts = append(parts, fmt.Sprintf("%g%% lost", r.LostPct))
	}
	return strings.Join(parts, ", ")
}

// axes draws a chart's frame, grid, tick labels and title.
func axes(w io.Writer, top int, xmax, ymax float64, title, unit string) {
	x0, x1 := marginLeft, plotWidth-marginRight
	y0, y1 := top, top+chartHeight
	fmt.Fprintf(w, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, y0-8, html.EscapeString(title))
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", x0, y0, x1-x0, y1-y0)
	xs := niceStep(xmax)
	for v := 0.0; v <= xmax+1e-9; v += xs {
		x := float64(x0) + v/xmax*float64(x1-x0)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, y0, x, y1)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, y1+16, fmtTick(v))
	}
	ys := niceStep(ymax)
	for v := 0.0; v <= ymax+1e-9; v += ys {
		y := float64(y1) - v/ymax*float64(y1-y0)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s%s</text>`+"\n", x0-6, y+4, fmtTick(v), unit)
	}
}

// polyline draws ys·scale over xs.
func polyline(w io.Writer, top int, xs, ys []float64, scale, xmax, ymax float64, color string) {
	x0, x1 := marginLeft, plotWidth-marginRight
	y1 := top + chartHeight
	var b strings.Builder
	for i := range min(len(xs), len(ys)) {
		x := float64(x0) + xs[i]/xmax*float64(x1-x0)
		y := float64(y1) - ys[i]*scale/ymax*float64(chartHeight)
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="%s"/>`+"\n", color, strings.TrimSpace(b.String()))
}

// niceStep returns a round tick step giving about 5–10 ticks up to v.
func niceStep(v float64) float64 {
	raw := v / 8
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// niceCeil rounds v up to a multiple of its tick step.
func niceCeil(v float64) float64 {
	s := niceStep(v)
	return math.Ceil(v/s) * s
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
