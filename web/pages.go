package web

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

const (
	perPage       = 20
	keysPerPage   = 100
	auditPerPage  = 50
	chartMinutes  = 60
	maxQueueAges  = 200  // queues whose oldest-job age /queues looks up
	failureScan   = 5000 // newest failure records read for counts and filters
	failureBatch  = 500
	maxBacktrace  = 200
	maxErrorBytes = 20000
)

// queueRow is one queue in a table.
type queueRow struct {
	Name string
	Size int64
	Age  string // age of the oldest job, when known
}

// jobRow is one job in a table.
type jobRow struct {
	Pos                      int64 // 1-based position in the queue
	Class, ID, Args, Invalid string
	EnqueuedAt               time.Time
}

func jobRowOf(j resq.JobView, limit int) jobRow {
	r := jobRow{Class: j.Class, ID: j.ID, Args: redactArgs(j, limit), Invalid: j.Invalid}
	if j.EnqueuedAt != nil {
		r.EnqueuedAt = *j.EnqueuedAt
	}
	return r
}

// workerRow is one worker in a table or in detail.
type workerRow struct {
	ID, Short, Host    string
	PID                int
	Queues             []string
	Started, Heartbeat string
	Processed, Failed  int64
	Busy               bool
	Queue, RunAt       string
	Since              time.Time
	Job                jobRow
}

func workerRowOf(v resq.WorkerView, argsLimit int) workerRow {
	r := workerRow{ID: v.ID, Short: resq.ShortWorker(v.ID), Host: v.Host, PID: v.PID, Queues: v.Queues,
		Started: v.Started, Heartbeat: v.Heartbeat, Processed: v.Processed, Failed: v.Failed}
	if v.Working != nil {
		r.Busy, r.Queue, r.RunAt, r.Since = true, v.Working.Queue, v.Working.RunAt, v.Working.Since
		r.Job = jobRowOf(v.Working.Job, argsLimit)
	}
	return r
}

// start reads ?start= (a non-negative offset).
func startParam(r *http.Request) int64 {
	n, err := strconv.ParseInt(r.URL.Query().Get("start"), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

type overviewData struct {
	Stats   resq.Stats
	Queues  []queueRow
	Working []workerRow
	Chart   chart
	Updated time.Time
}

func (h *Handler) loadOverview(ctx context.Context) (overviewData, error) {
	var d overviewData
	var err error
	if d.Stats, err = h.admin.Stats(ctx); err != nil {
		return d, err
	}
	qs, err := h.admin.Queues(ctx)
	if err != nil {
		return d, err
	}
	for _, q := range qs {
		d.Queues = append(d.Queues, queueRow{Name: q.Name, Size: q.Size})
	}
	ws, err := h.admin.Workers(ctx)
	if err != nil {
		return d, err
	}
	for _, w := range ws {
		if w.Working != nil {
			d.Working = append(d.Working, workerRowOf(w, argsListLimit))
		}
	}
	sortWorking(d.Working)
	hist, err := h.admin.History(ctx, chartMinutes)
	if err != nil {
		return d, err
	}
	d.Chart = buildChart(hist)
	d.Updated = time.Now()
	return d, nil
}

func sortWorking(ws []workerRow) {
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Since.Before(ws[j].Since) })
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	d, err := h.loadOverview(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	h.renderPage(w, r, p, "overview", "Overview", "overview", d)
}

// overviewPoll is the live part of the overview, fetched every 2 s.
func (h *Handler) overviewPoll(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	d, err := h.loadOverview(ctx)
	if err != nil {
		h.logger.Warn("dashboard: overview poll", "error", err)
		http.Error(w, "cannot read Redis", http.StatusServiceUnavailable)
		return
	}
	h.renderTemplate(w, http.StatusOK, "overview", "live", h.newView(p, "", "", d))
}

type workingData struct {
	Working []workerRow
	Total   int
}

func (h *Handler) working(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	ws, err := h.admin.Workers(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	d := workingData{Total: len(ws)}
	for _, v := range ws {
		if v.Working != nil {
			d.Working = append(d.Working, workerRowOf(v, argsListLimit))
		}
	}
	sortWorking(d.Working)
	h.renderPage(w, r, p, "working", "Working", "working", d)
}

type queuesData struct {
	Queues   []queueRow
	Failures int64
	Pending  int64
}

func (h *Handler) queues(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	qs, err := h.admin.Queues(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	var d queuesData
	for i, q := range qs {
		row := queueRow{Name: q.Name, Size: q.Size}
		d.Pending += q.Size
		if q.Size > 0 && i < maxQueueAges {
			if age, ok, err := h.admin.OldestJobAge(ctx, q.Name); err == nil && ok {
				row.Age = humanDuration(age)
			}
		}
		d.Queues = append(d.Queues, row)
	}
	if d.Failures, err = h.admin.FailureCount(ctx); err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	h.renderPage(w, r, p, "queues", "Queues", "queues", d)
}

type queueData struct {
	Name  string
	Known bool // listed in the queues set
	Size  int64
	Start int64
	Jobs  []jobRow
	Pager pager
}

func (h *Handler) queue(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	name := r.PathValue("name")
	d := queueData{Name: name, Start: startParam(r)}
	qs, err := h.admin.Queues(ctx)
	if err == nil {
		d.Size, err = h.admin.QueueSize(ctx, name)
	}
	var jobs []resq.JobView
	if err == nil {
		jobs, err = h.admin.Peek(ctx, name, d.Start, perPage)
	}
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	for _, q := range qs {
		if q.Name == name {
			d.Known = true
		}
	}
	for i, j := range jobs {
		row := jobRowOf(j, argsListLimit)
		row.Pos = d.Start + int64(i) + 1
		d.Jobs = append(d.Jobs, row)
	}
	base := h.path("/queues", name)
	d.Pager = newPager(d.Start, int64(len(jobs)), d.Size, func(s int64) string {
		return base + "?start=" + strconv.FormatInt(s, 10)
	}, perPage)
	status := http.StatusOK
	if !d.Known && d.Size == 0 {
		status = http.StatusNotFound
	}
	h.render(w, status, "queue", h.newView(p, "Queue "+name, "queues", d))
}

type hostRow struct {
	Host          string
	Workers, Busy int
}

type workersData struct {
	Heading string
	Workers []workerRow
	Hosts   []hostRow
	Busy    int
}

func (h *Handler) workers(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	ws, err := h.admin.Workers(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	h.renderPage(w, r, p, "workers", "Workers", "workers", h.workersOf(ws, "", "Workers"))
}

func (h *Handler) workersOf(ws []resq.WorkerView, host, heading string) workersData {
	d := workersData{Heading: heading}
	byHost := map[string]*hostRow{}
	for _, v := range ws {
		if host != "" && v.Host != host {
			continue
		}
		row := workerRowOf(v, argsListLimit)
		d.Workers = append(d.Workers, row)
		hr := byHost[v.Host]
		if hr == nil {
			hr = &hostRow{Host: v.Host}
			byHost[v.Host] = hr
		}
		hr.Workers++
		if row.Busy {
			hr.Busy++
			d.Busy++
		}
	}
	for _, hr := range byHost {
		d.Hosts = append(d.Hosts, *hr)
	}
	sort.Slice(d.Hosts, func(i, j int) bool { return d.Hosts[i].Host < d.Hosts[j].Host })
	return d
}

func (h *Handler) worker(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	id := r.PathValue("id")
	ws, err := h.admin.Workers(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	for _, v := range ws {
		if v.ID == id {
			h.renderPage(w, r, p, "worker", "Worker "+resq.ShortWorker(id), "workers", workerRowOf(v, argsDetailLimit))
			return
		}
	}
	if id == "all" {
		h.renderPage(w, r, p, "workers", "Workers", "workers", h.workersOf(ws, "", "Workers"))
		return
	}
	for _, v := range ws {
		if v.Host == id {
			h.renderPage(w, r, p, "workers", "Workers on "+id, "workers", h.workersOf(ws, id, "Workers on "+id))
			return
		}
	}
	h.fail(w, r, p, http.StatusNotFound, "Worker doesn't exist (it may have stopped): "+truncate(id, 300), nil)
}

// failureRow is one failure record in a list or in detail.
type failureRow struct {
	Index            int64
	Digest           string
	Time             time.Time
	FailedAt         string
	Worker, Queue    string
	Class, ID, Args  string
	Exception, Error string
	Backtrace        []string
	MoreBacktrace    int
	RetriedAt        string
	Unparsable       bool
}

func failureRowOf(f resq.FailureView, argsLimit, errLimit int) failureRow {
	row := failureRow{Index: f.Index, Digest: digest(f.Raw), Time: f.Time, FailedAt: f.FailedAt, Worker: f.Worker,
		Queue: f.Queue, Class: f.Job.Class, ID: f.Job.ID, Exception: f.Exception, RetriedAt: f.RetriedAt,
		Unparsable: f.Unparsable}
	if f.Unparsable {
		return row
	}
	row.Args = redactArgs(f.Job, argsLimit)
	if errLimit < maxErrorBytes {
		row.Error = truncate(firstLine(f.Error), errLimit)
	} else {
		row.Error = truncate(f.Error, errLimit)
		bt := f.Backtrace
		if len(bt) > maxBacktrace {
			row.MoreBacktrace = len(bt) - maxBacktrace
			bt = bt[:maxBacktrace]
		}
		for _, l := range bt {
			row.Backtrace = append(row.Backtrace, truncate(l, 1000))
		}
	}
	return row
}

type countRow struct {
	Name  string
	Count int64
	Link  string
}

type failedData struct {
	Total     int64
	Matched   int64
	Filtered  bool
	Class     string
	Queue     string
	Exception string
	Rows      []failureRow
	Pager     pager
	ByQueue   []countRow
	Classes   []string
	Queues    []string
	Errors    []string // exception names
	Scanned   int64
	Partial   bool // counts cover only the newest failureScan records
	Back      string
}

func (h *Handler) failed(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	q := r.URL.Query()
	d := failedData{Class: q.Get("class"), Queue: q.Get("queue"), Exception: q.Get("exception"), Back: r.URL.RequestURI()}
	d.Filtered = d.Class != "" || d.Queue != "" || d.Exception != ""
	start := startParam(r)
	total, err := h.admin.FailureCount(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	d.Total = total
	byQueue, classes, excs := map[string]int64{}, map[string]bool{}, map[string]bool{}
	var matched []resq.FailureView
	// Newest first: scan from the end of the list.
	for hi := total - 1; hi >= 0 && d.Scanned < failureScan; hi -= failureBatch {
		lo := max(hi-failureBatch+1, 0)
		batch, err := h.admin.Failures(ctx, lo, hi-lo+1)
		if err != nil {
			h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
			return
		}
		for i := len(batch) - 1; i >= 0; i-- {
			f := batch[i]
			d.Scanned++
			byQueue[f.Queue]++
			classes[f.Job.Class] = true
			excs[f.Exception] = true
			if !d.Filtered {
				continue
			}
			if (d.Class == "" || f.Job.Class == d.Class) && (d.Queue == "" || f.Queue == d.Queue) &&
				(d.Exception == "" || f.Exception == d.Exception) {
				if d.Matched >= start && d.Matched < start+perPage {
					matched = append(matched, f)
				}
				d.Matched++
			}
		}
	}
	d.Partial = d.Scanned < total
	if !d.Filtered {
		d.Matched = total
		// Page start counts from the newest record (index total-1).
		hi := total - 1 - start
		lo := max(hi-perPage+1, 0)
		if hi >= 0 {
			batch, err := h.admin.Failures(ctx, lo, hi-lo+1)
			if err != nil {
				h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
				return
			}
			for i := len(batch) - 1; i >= 0; i-- {
				matched = append(matched, batch[i])
			}
		}
	}
	for _, f := range matched {
		d.Rows = append(d.Rows, failureRowOf(f, argsListLimit, 300))
	}
	link := func(s int64) string {
		v := url.Values{}
		for k, val := range map[string]string{"class": d.Class, "queue": d.Queue, "exception": d.Exception} {
			if val != "" {
				v.Set(k, val)
			}
		}
		if s > 0 {
			v.Set("start", strconv.FormatInt(s, 10))
		}
		if len(v) == 0 {
			return h.path("/failed")
		}
		return h.path("/failed") + "?" + v.Encode()
	}
	d.Pager = newPager(start, int64(len(d.Rows)), d.Matched, link, perPage)
	for name, n := range byQueue {
		d.ByQueue = append(d.ByQueue, countRow{Name: name, Count: n, Link: h.path("/failed") + "?" + url.Values{"queue": {name}}.Encode()})
	}
	sort.Slice(d.ByQueue, func(i, j int) bool { return d.ByQueue[i].Name < d.ByQueue[j].Name })
	d.Classes, d.Queues, d.Errors = sortedKeys(classes), sortedKeys(byQueue), sortedKeys(excs)
	h.renderPage(w, r, p, "failed", "Failed", "failed", d)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type failureData struct {
	F    failureRow
	Back string
}

func (h *Handler) failure(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	idx, err := strconv.ParseInt(r.PathValue("index"), 10, 64)
	if err != nil || idx < 0 {
		h.fail(w, r, p, http.StatusNotFound, "no such failure", nil)
		return
	}
	fs, err := h.admin.Failures(ctx, idx, 1)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	if len(fs) == 0 {
		h.fail(w, r, p, http.StatusNotFound, "no failure at index "+strconv.FormatInt(idx, 10)+" (it may have been removed)", nil)
		return
	}
	h.renderPage(w, r, p, "failure", "Failure "+strconv.FormatInt(idx, 10), "failed",
		failureData{F: failureRowOf(fs[0], argsDetailLimit, maxErrorBytes), Back: r.URL.RequestURI()})
}

type statsData struct {
	Stats  resq.Stats
	Counts []jobCountRow
}

type jobCountRow struct {
	Queue, Class      string
	Processed, Failed int64
}

func (h *Handler) statsResque(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	var d statsData
	var err error
	d.Stats, err = h.admin.Stats(ctx)
	var counts []resq.JobCount
	if err == nil {
		counts, err = h.admin.JobCounts(ctx)
	}
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis", err)
		return
	}
	idx := map[[2]string]int{}
	for _, c := range counts {
		k := [2]string{c.Queue, c.Class}
		i, ok := idx[k]
		if !ok {
			i = len(d.Counts)
			idx[k] = i
			d.Counts = append(d.Counts, jobCountRow{Queue: c.Queue, Class: c.Class})
		}
		switch c.Outcome {
		case "processed":
			d.Counts[i].Processed += c.Count
		case "failed":
			d.Counts[i].Failed += c.Count
		}
	}
	h.renderPage(w, r, p, "stats", "Stats", "stats", d)
}

type infoSection struct {
	Name string
	Rows [][2]string
}

func (h *Handler) statsRedis(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	text, err := h.admin.RedisInfo(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read Redis INFO", err)
		return
	}
	h.renderPage(w, r, p, "redis", "Redis", "stats", parseInfo(text))
}

// parseInfo splits INFO's text into sections of key/value rows.
func parseInfo(text string) []infoSection {
	var out []infoSection
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			out = append(out, infoSection{Name: strings.TrimSpace(strings.TrimPrefix(line, "#"))})
		default:
			if len(out) == 0 {
				out = append(out, infoSection{Name: "Info"})
			}
			k, v, _ := strings.Cut(line, ":")
			out[len(out)-1].Rows = append(out[len(out)-1].Rows, [2]string{k, v})
		}
	}
	return out
}

type keysData struct {
	Keys  []string
	Pager pager
}

func (h *Handler) statsKeys(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	keys, err := h.admin.Keys(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot list keys", err)
		return
	}
	start := min(startParam(r), int64(len(keys)))
	end := min(start+keysPerPage, int64(len(keys)))
	d := keysData{Keys: keys[start:end]}
	d.Pager = newPager(start, end-start, int64(len(keys)), func(s int64) string {
		return h.path("/stats/keys") + "?start=" + strconv.FormatInt(s, 10)
	}, keysPerPage)
	h.renderPage(w, r, p, "keys", "Keys", "stats", d)
}

type auditData struct {
	Entries []resq.AuditEntry
	Pager   pager
	Cap     int
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	start := startParam(r)
	es, n, err := h.admin.AuditLog(ctx, start, auditPerPage)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read the audit log", err)
		return
	}
	d := auditData{Entries: es, Cap: resq.AuditLogCap}
	d.Pager = newPager(start, int64(len(es)), n, func(s int64) string {
		return h.path("/audit") + "?start=" + strconv.FormatInt(s, 10)
	}, auditPerPage)
	h.renderPage(w, r, p, "audit", "Audit log", "audit", d)
}
