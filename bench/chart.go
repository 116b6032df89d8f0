package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeChart draws one panel per contention configuration: grouped bars
// per contender of wait p50, p99 and max and the release→next gap p50, on a log scale of time.
func writeChart(path string, configs [][]contendRow) error {
	var panels []*plot.Plot
	for _, rows := range configs {
		if len(rows) == 0 {
			continue
		}
		p, err := contentionPanel(rows)
		if err != nil {
			return err
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return nil
	}
	const w = 12 * vg.Inch
	h := vg.Length(len(panels)) * 4.2 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))
	dc := draw.New(img)
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type series struct {
	name  string
	color color.Color
	value func(r contendRow) time.Duration
}

func contentionPanel(rows []contendRow) (*plot.Plot, error) {
	all := []series{
		{"wait p50", color.RGBA{R: 0x9e, G: 0xc9, B: 0xe2, A: 0xff}, func(r contendRow) time.Duration { return r.wait.P50 }},
		{"wait p99", color.RGBA{R: 0x1f, G: 0x5a, B: 0x96, A: 0xff}, func(r contendRow) time.Duration { return r.wait.P99 }},
		{"longest wait (incl. still waiting at the end)", color.RGBA{R: 0xa0, G: 0xa0, B: 0xa0, A: 0xff}, func(r contendRow) time.Duration { return r.wait.Max }},
		{"release→next gap p50", color.RGBA{R: 0xe0, G: 0x7b, B: 0x28, A: 0xff}, func(r contendRow) time.Duration { return r.gap.P50 }},
	}
	if !rows[0].gapsKnown {
		all = all[:3]
	}
	p := plot.New()
	p.Title.Text = "Contention, " + rows[0].label + " (log scale; shorter is better)"
	p.Y.Label.Text = "time"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = durationTicks{}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Centimeter / 3

	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = strings.Replace(r.c.name, "/", "\n", 1)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	var bars []*logBars
	for k, s := range all {
		b := &logBars{index: k, of: len(all), width: 0.8, color: s.color, vals: make([]float64, len(rows))}
		for i, r := range rows {
			v := math.NaN()
			if r.err == nil && r.acq > 0 {
				if d := s.value(r); d > 0 {
					v = float64(d) / float64(time.Microsecond)
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
			b.vals[i] = v
		}
		bars = append(bars, b)
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 10
	}
	floor := math.Pow(10, math.Floor(math.Log10(lo)))
	ceil := math.Pow(10, math.Ceil(math.Log10(hi*1.0001)))
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid)
	for k, b := range bars {
		b.floor = floor
		p.Add(b)
		p.Legend.Add(all[k].name, b)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(rows))-0.5
	// Room above the tallest bar for the legend.
	p.Y.Min, p.Y.Max = floor, ceil*10
	return p, nil
}

// logBars is one series of grouped bars on a log-scale Y axis: bars rise
// from floor (the axis minimum) rather than from 0, which a log scale has
// no place for. Values are in µs; NaN means no bar.
type logBars struct {
	vals      []float64
	index, of int
	width     float64
	floor     float64
	color     color.Color
}

func (b *logBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	w := b.width / float64(b.of)
	for i, v := range b.vals {
		if math.IsNaN(v) || v <= 0 {
			continue
		}
		x0 := float64(i) - b.width/2 + float64(b.index)*w
		x1 := x0 + 0.92*w
		y0, y1 := trY(b.floor), trY(math.Max(v, b.floor))
		pts := []vg.Point{{X: trX(x0), Y: y0}, {X: trX(x1), Y: y0}, {X: trX(x1), Y: y1}, {X: trX(x0), Y: y1}}
		c.FillPolygon(b.color, c.ClipPolygonY(pts))
	}
}

func (b *logBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, v := range b.vals {
		if v > 0 {
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = b.floor, b.floor
	}
	return -0.5, float64(len(b.vals)) - 0.5, ymin, ymax
}

func (b *logBars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y},
		{X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y},
	}
	c.FillPolygon(b.color, pts)
}

// durationTicks marks every decade of µs with a time label, and 2…9 times
// each decade without one.
type durationTicks struct{}

func (durationTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	if min <= 0 || max <= min {
		return ticks
	}
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		base := math.Pow(10, e)
		for m := 1.0; m < 10; m++ {
			v := m * base
			if v < min*0.999 || v > max*1.001 {
				continue
			}
			label := ""
			if m == 1 {
				label = fmtMicros(v)
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
	return ticks
}

func fmtMicros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%g s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%g ms", us/1e3)
	default:
		return fmt.Sprintf("%g µs", us)
	}
}
