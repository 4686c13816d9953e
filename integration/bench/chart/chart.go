package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	stdfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Sizes of the picture, in pixels at dpi.
const (
	dpi           = 96
	minWidth      = 600
	maxSide       = 8000
	margin        = 14  // around the picture and between its parts
	rowPx         = 34  // one bar and the gap to the next, at the natural height
	minScale      = 0.5 // the least share of rowPx that -height may leave a bar
	panelExtraPx  = 70  // a panel's title, x axis and padding
	legendWidthPx = 330 // the legend, when it stands right of the figures in a unit
	minDataPx     = 200 // the least width of a panel's bars beside the legend
)

// Colours: Okabe and Ito's, which colour-blind readers tell apart.
var (
	colourMet    = color.RGBA{R: 0x00, G: 0x9e, B: 0x73, A: 0xff}
	colourNotMet = color.RGBA{R: 0xd5, G: 0x5e, B: 0x00, A: 0xff}
	colourSpread = color.RGBA{R: 0x22, G: 0x22, B: 0x22, A: 0xff}
	colourBound  = color.Black
	colourEqual  = color.Gray{Y: 0x70}
)

var (
	sans     = font.Font{Typeface: "Liberation", Variant: "Sans"}
	sansBold = font.Font{Typeface: "Liberation", Variant: "Sans", Weight: stdfont.WeightBold}
)

// px converts pixels at dpi to vg's points.
func px(n float64) vg.Length { return vg.Length(n * 72 / dpi) }

// toPx converts vg's points to pixels at dpi.
func toPx(l vg.Length) float64 { return float64(l) * dpi / 72 }

// panel is the targets drawn on one x axis: the ratios, or the figures in
// one unit.
type panel struct {
	unit    string
	targets []target
}

// rowsPx is the panel's height when each bar gets rowH pixels.
func (pn panel) rowsPx(rowH float64) float64 {
	return float64(len(pn.targets))*rowH + panelExtraPx
}

// panels groups the targets by unit: the ratios, then the figures of each
// unit in the order they come.
func panels(targets []target) (ratios *panel, others []panel) {
	idx := map[string]int{}
	var ps []panel
	for _, t := range targets {
		i, ok := idx[t.unit]
		if !ok {
			i = len(ps)
			idx[t.unit] = i
			ps = append(ps, panel{unit: t.unit})
		}
		ps[i].targets = append(ps[i].targets, t)
	}
	for i, pn := range ps {
		if pn.unit == "" {
			ratios = &ps[i]
		} else {
			others = append(others, pn)
		}
	}
	return ratios, others
}

// titleLine is one line of the picture's title.
type titleLine struct {
	sty  text.Style
	text string
	h    float64 // pixels
}

// layout says where the parts of the picture go.
type layout struct {
	title        []titleLine
	ratios       *panel
	others       []panel
	legendBeside bool // right of the figures in a unit, else below all
	legendPx     float64
}

func newLayout(rep report, width int) layout {
	l := layout{legendPx: 5*20 + 10}
	l.title = []titleLine{
		{textStyle(sansBold, 15), "cgirun load benchmark: the targets", 26},
		{textStyle(sans, 11), rep.run, 18},
	}
	if len(rep.unmeasured) > 0 {
		sty := textStyle(sans, 10)
		for _, line := range wrap(sty, "Not measured, so not drawn: ", rep.unmeasured, px(float64(width-2*margin))) {
			l.title = append(l.title, titleLine{sty, line, 16})
		}
	}
	l.ratios, l.others = panels(rep.targets)
	var names vg.Length
	for _, t := range rep.targets {
		names = max(names, nameStyle().Width(barName(t)))
	}
	l.legendBeside = len(l.others) == 0 ||
		float64(width)-2*margin-legendWidthPx-toPx(names)-margin >= minDataPx
	return l
}

// heightPx is the picture's height when each bar gets rowH pixels.
func (l layout) heightPx(rowH float64) float64 {
	h := float64(margin)
	for _, t := range l.title {
		h += t.h
	}
	h += margin
	if l.ratios != nil {
		h += l.ratios.rowsPx(rowH) + margin
	}
	var others float64
	for _, pn := range l.others {
		others += pn.rowsPx(rowH)
	}
	if l.legendBeside {
		h += max(others, l.legendPx)
	} else {
		h += others + margin + l.legendPx
	}
	return h + margin
}

// rowFor returns the pixels each bar gets in a picture height pixels high.
func (l layout) rowFor(height float64) float64 {
	// heightPx grows with rowH, linearly but for a kink where the panels
	// beside the legend grow taller than it: bisect rather than solve.
	lo, hi := 0.0, float64(maxSide)
	for range 60 {
		mid := (lo + hi) / 2
		if l.heightPx(mid) <= height {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// wrap joins items after prefix, "; " between them, into lines no wider
// than w where it can.
func wrap(sty text.Style, prefix string, items []string, w vg.Length) []string {
	var lines []string
	line := prefix
	for i, it := range items {
		next := line + it
		if i > 0 {
			next = line + "; " + it
		}
		if i > 0 && sty.Width(next) > w {
			lines = append(lines, line+";")
			next = it
		}
		line = next
	}
	return append(lines, line)
}

// render draws rep as a PNG of width×height pixels; height 0 picks the
// height that gives each bar rowPx.
func render(rep report, width, height int) ([]byte, error) {
	if width < minWidth || width > maxSide {
		return nil, fmt.Errorf("width %d: want %d to %d pixels", width, minWidth, maxSide)
	}
	l := newLayout(rep, width)
	rowH := float64(rowPx)
	if height == 0 {
		height = int(math.Ceil(l.heightPx(rowH)))
		if height > maxSide {
			return nil, fmt.Errorf("%d bars need %d pixels, more than %d", len(rep.targets), height, maxSide)
		}
	} else {
		least := int(math.Ceil(l.heightPx(rowPx * minScale)))
		if height < least || height > maxSide {
			return nil, fmt.Errorf("height %d: want 0 (fit the bars) or %d to %d pixels", height, least, maxSide)
		}
		rowH = l.rowFor(float64(height))
	}

	img := vgimg.NewWith(vgimg.UseWH(px(float64(width)), px(float64(height))), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	m := px(margin)
	top := dc.Max.Y - m

	mid := (dc.Min.X + dc.Max.X) / 2
	for _, t := range l.title {
		dc.FillText(t.sty, vg.Point{X: mid, Y: top}, t.text)
		top -= px(t.h)
	}
	top -= m

	type placed struct {
		p *plot.Plot
		c draw.Canvas
	}
	var all []placed
	if l.ratios != nil {
		h := px(l.ratios.rowsPx(rowH))
		c := canvasAt(dc, m, dc.Max.X-m, top-h, top)
		all = append(all, placed{newPanel(*l.ratios, rowH, c), c})
		top -= h + m
	}
	right := dc.Max.X - m
	if l.legendBeside && len(l.others) > 0 {
		right -= px(legendWidthPx)
	}
	legendTop := top
	for _, pn := range l.others {
		h := px(pn.rowsPx(rowH))
		c := canvasAt(dc, m, right, top-h, top)
		all = append(all, placed{newPanel(pn, rowH, c), c})
		top -= h
	}
	if !l.legendBeside {
		legendTop = top - m
	}

	// Line up the left edges of the panels' data areas, so that the bars
	// of all panels start under one another.
	var left vg.Length
	for _, pl := range all {
		left = max(left, pl.p.DataCanvas(pl.c).Min.X-pl.c.Min.X)
	}
	for _, pl := range all {
		pl.c.Min.X += left - (pl.p.DataCanvas(pl.c).Min.X - pl.c.Min.X)
		pl.p.Draw(pl.c)
	}

	legend := newLegend(l.ratios != nil)
	legendLeft := m + left // under the bars
	if l.legendBeside && len(l.others) > 0 {
		legendLeft = right + m
	} else if r := legend.Rectangle(dc); legendLeft+r.Size().X > dc.Max.X-m {
		legendLeft = m
	}
	legend.Draw(canvasAt(dc, legendLeft, dc.Max.X-m, legendTop-px(l.legendPx), legendTop))

	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

func canvasAt(dc draw.Canvas, x0, x1, y0, y1 vg.Length) draw.Canvas {
	return draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
		Min: vg.Point{X: x0, Y: y0},
		Max: vg.Point{X: x1, Y: y1},
	}}
}

func textStyle(f font.Font, size vg.Length) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    font.From(f, size),
		XAlign:  text.XCenter,
		YAlign:  text.YTop,
		Handler: plot.DefaultTextHandler,
	}
}

// maxNameRunes bounds the label beside a bar; the longest that run.sh
// prints has 42.
const maxNameRunes = 60

// barName is the label beside a target's bar: its short name, cut short
// with "…" past maxNameRunes, and the bound.
func barName(t target) string {
	name := []rune(shortName(t.name))
	if len(name) > maxNameRunes {
		name = append(name[:maxNameRunes-1], '…')
	}
	return fmt.Sprintf("%s (%s)", string(name), t.wantTxt)
}

// nameStyle is the style of the labels beside the bars.
func nameStyle() text.Style {
	sty := textStyle(sans, 11)
	sty.XAlign = text.XRight
	sty.YAlign = text.YCenter
	return sty
}

// newPanel builds the plot of one panel, to be drawn on about c; rowH is
// the pixels each bar gets.
func newPanel(pn panel, rowH float64, c draw.Canvas) *plot.Plot {
	p := plot.New()
	p.Title.TextStyle = textStyle(sansBold, 11)
	p.Title.Padding = px(6)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle = textStyle(sans, 10)
		a.Tick.Label = textStyle(sans, 10)
	}
	p.Y.Tick.Label = nameStyle()
	p.X.Tick.Label.YAlign = text.YTop

	n := len(pn.targets)
	// The first row of the table is drawn at the top.
	y := func(i int) float64 { return float64(n - 1 - i) }

	p.Title.Text = "Ratios: cgirun's figure over the other's"
	if pn.unit != "" {
		p.Title.Text = fmt.Sprintf("Figures in %s", pn.unit)
	}

	names := make([]string, n)
	xMax := 0.0
	for i, t := range pn.targets {
		names[n-1-i] = barName(t)
		_, hi := t.spread()
		xMax = max(xMax, t.median, hi, t.want)
	}
	p.NominalY(names...)
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	p.X.Min, p.X.Max = 0, xMax*1.1
	switch {
	case pn.unit == "":
		p.X.Max = max(p.X.Max, 1.1) // show where 1 is
	case xMax == 0:
		p.X.Max = 1
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks(p.X.Max))

	grid := plotter.NewGrid()
	grid.Horizontal.Color = nil
	grid.Vertical.Color = color.Gray{Y: 0xdd}
	p.Add(grid)

	if pn.unit == "" {
		p.Add(vline(1, -0.5, float64(n)-0.5, equalStyle()))
	}

	for i, t := range pn.targets {
		bar, err := plotter.NewBarChart(plotter.Values{t.median}, px(rowH*0.55))
		if err != nil {
			panic(err) // one finite value ≥ 0: NewBarChart cannot fail
		}
		bar.Horizontal = true
		bar.XMin = y(i)
		bar.Color = colourNotMet
		if t.met {
			bar.Color = colourMet
		}
		bar.LineStyle.Width = 0
		p.Add(bar)
	}

	var (
		spreads plotter.XYs
		errs    plotter.XErrors
	)
	for i, t := range pn.targets {
		lo, hi := t.spread()
		if len(t.perPass) > 1 {
			spreads = append(spreads, plotter.XY{X: t.median, Y: y(i)})
			// The median is printed rounded, so it can lie a hair outside
			// the passes' range.
			errs = append(errs, struct{ Low, High float64 }{max(0, t.median-lo), max(0, hi-t.median)})
		}
		p.Add(vline(t.want, y(i)-0.4, y(i)+0.4, boundStyle()))
	}
	if len(spreads) > 0 {
		eb, err := plotter.NewXErrorBars(struct {
			plotter.XYs
			plotter.XErrors
		}{spreads, errs})
		if err != nil {
			panic(err) // finite values: NewXErrorBars cannot fail
		}
		eb.LineStyle = spreadStyle()
		eb.CapWidth = px(rowH * 0.4)
		p.Add(eb)
	}

	p.Add(medianLabels(p, pn, c))
	return p
}

// medianLabels prints each median right of its whiskers, or right of its
// bound where the bound is too close to leave room between them.
func medianLabels(p *plot.Plot, pn panel, c draw.Canvas) *plotter.Labels {
	sty := textStyle(sans, 10)
	sty.XAlign = text.XLeft
	sty.YAlign = text.YCenter
	gap := px(6)
	data := p.DataCanvas(c)
	perUnit := (data.Max.X - data.Min.X) / vg.Length(p.X.Max-p.X.Min) // points per data unit

	var labels plotter.XYLabels
	n := len(pn.targets)
	for i, t := range pn.targets {
		_, hi := t.spread()
		at := max(hi, t.median)
		room := vg.Length(t.want-at) * perUnit
		if t.want > at && room < sty.Width(t.medText)+2*gap+boundStyle().Width {
			at = t.want
		}
		labels.XYs = append(labels.XYs, plotter.XY{X: at, Y: float64(n - 1 - i)})
		labels.Labels = append(labels.Labels, t.medText)
	}
	lab, err := plotter.NewLabels(labels)
	if err != nil {
		panic(err) // finite values: NewLabels cannot fail
	}
	for i := range lab.TextStyle {
		lab.TextStyle[i] = sty
	}
	lab.Offset = vg.Point{X: gap}
	return lab
}

func boundStyle() draw.LineStyle {
	return draw.LineStyle{Color: colourBound, Width: px(3.5)}
}

func spreadStyle() draw.LineStyle {
	return draw.LineStyle{Color: colourSpread, Width: px(1.5)}
}

func equalStyle() draw.LineStyle {
	return draw.LineStyle{Color: colourEqual, Width: px(1.2), Dashes: []vg.Length{px(5), px(4)}}
}

// vline is a vertical segment at x from y0 to y1, in data units.
func vline(x, y0, y1 float64, sty draw.LineStyle) *plotter.Line {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: y0}, {X: x, Y: y1}})
	if err != nil {
		panic(err) // finite values: NewLine cannot fail
	}
	l.LineStyle = sty
	return l
}

// ticks returns evenly spaced round ticks from 0 to at most top: five to
// ten of them, at steps of 1, 2, 2.5 or 5 times a power of ten.
func ticks(top float64) []plot.Tick {
	if !(top > 0) {
		return []plot.Tick{{Value: 0, Label: "0"}}
	}
	step := math.Pow(10, math.Floor(math.Log10(top/10)))
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		if top/(step*f) <= 10 {
			step *= f
			break
		}
	}
	var ts []plot.Tick
	for i := 0; float64(i)*step <= top*(1+1e-9); i++ {
		v := float64(i) * step
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 6, 64)})
	}
	return ts
}

// thumb draws a legend entry's sample.
type thumb func(c *draw.Canvas)

func (f thumb) Thumbnail(c *draw.Canvas) { f(c) }

func boxThumb(col color.Color) thumb {
	return func(c *draw.Canvas) {
		inset := (c.Max.Y - c.Min.Y) * 0.15
		r := vg.Rectangle{Min: vg.Point{X: c.Min.X, Y: c.Min.Y + inset}, Max: vg.Point{X: c.Max.X, Y: c.Max.Y - inset}}
		c.SetColor(col)
		c.Fill(r.Path())
	}
}

// newLegend explains the marks; withEqual adds the dashed line at ratio 1.
func newLegend(withEqual bool) plot.Legend {
	l := plot.NewLegend()
	l.TextStyle = textStyle(sans, 10)
	l.TextStyle.XAlign = text.XLeft
	l.TextStyle.YAlign = text.YBottom
	l.Top, l.Left = true, true
	l.ThumbnailWidth = px(28)
	l.Padding = px(5)
	midY := func(c *draw.Canvas) vg.Length { return (c.Min.Y + c.Max.Y) / 2 }
	midX := func(c *draw.Canvas) vg.Length { return (c.Min.X + c.Max.X) / 2 }
	l.Add("median of the passes, target met", boxThumb(colourMet))
	l.Add("median of the passes, target not met", boxThumb(colourNotMet))
	l.Add("lowest to highest pass", thumb(func(c *draw.Canvas) {
		y, capH := midY(c), (c.Max.Y-c.Min.Y)*0.35
		sty := spreadStyle()
		c.StrokeLine2(sty, c.Min.X, y, c.Max.X, y)
		c.StrokeLine2(sty, c.Min.X, y-capH, c.Min.X, y+capH)
		c.StrokeLine2(sty, c.Max.X, y-capH, c.Max.X, y+capH)
	}))
	l.Add("wanted bound, also in brackets", thumb(func(c *draw.Canvas) {
		c.StrokeLine2(boundStyle(), midX(c), c.Min.Y, midX(c), c.Max.Y)
	}))
	if withEqual {
		l.Add("ratio 1: as good as the other", thumb(func(c *draw.Canvas) {
			c.StrokeLine2(equalStyle(), midX(c), c.Min.Y, midX(c), c.Max.Y)
		}))
	}
	return l
}

// Compile-time check that thumb fits the legend.
var _ plot.Thumbnailer = thumb(nil)
