package web

import (
	"strconv"
	"strings"

	"github.com/resq-go/resq"
)

// chart is the processed/failed history drawn as inline SVG by the overview
// template: numbers only, so nothing from Redis reaches the markup.
type chart struct {
	W, H                  int
	Left, Right, Top, Bot int // plot area
	LabelX, TickY         int // where axis labels go
	ProcessedArea         string
	ProcessedLine         string
	FailedLine            string
	Grid                  []gridLine
	Ticks                 []tick
	Processed, Failed     int64
	Minutes               int
	Empty                 bool
}

type gridLine struct {
	Y     int
	Label string
}

type tick struct {
	X      int
	Label  string
	Anchor string // SVG text-anchor
}

// buildChart lays out one point per minute, oldest left.
func buildChart(hist []resq.HistoryPoint) chart {
	c := chart{W: 960, H: 220, Left: 72, Right: 944, Top: 14, Bot: 188, LabelX: 64, TickY: 212, Minutes: len(hist)}
	var peak int64
	for _, p := range hist {
		c.Processed += p.Processed
		c.Failed += p.Failed
		peak = max(peak, p.Processed, p.Failed)
	}
	c.Empty = peak == 0
	top := niceCeil(peak)
	x := func(i int) int {
		if len(hist) < 2 {
			return c.Left
		}
		return c.Left + i*(c.Right-c.Left)/(len(hist)-1)
	}
	y := func(v int64) int { return c.Bot - int(v*int64(c.Bot-c.Top)/top) }
	var pl, fl strings.Builder
	for i, p := range hist {
		if i > 0 {
			pl.WriteByte(' ')
			fl.WriteByte(' ')
		}
		pl.WriteString(strconv.Itoa(x(i)) + "," + strconv.Itoa(y(p.Processed)))
		fl.WriteString(strconv.Itoa(x(i)) + "," + strconv.Itoa(y(p.Failed)))
	}
	c.ProcessedLine, c.FailedLine = pl.String(), fl.String()
	if len(hist) > 0 {
		c.ProcessedArea = strconv.Itoa(x(0)) + "," + strconv.Itoa(c.Bot) + " " + c.ProcessedLine + " " +
			strconv.Itoa(x(len(hist)-1)) + "," + strconv.Itoa(c.Bot)
	}
	for _, v := range []int64{0, top / 2, top} {
		c.Grid = append(c.Grid, gridLine{Y: y(v), Label: num(v)})
	}
	for i, p := range hist {
		if (len(hist)-1-i)%15 == 0 {
			anchor := "middle"
			if i == len(hist)-1 {
				anchor = "end" // the newest minute sits at the right edge
			}
			c.Ticks = append(c.Ticks, tick{X: x(i), Label: p.Minute.Local().Format("15:04"), Anchor: anchor})
		}
	}
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 2, so
// the half-way grid line is a whole number).
func niceCeil(v int64) int64 {
	if v <= 2 {
		return 2
	}
	p := int64(1)
	for p*10 < v {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
