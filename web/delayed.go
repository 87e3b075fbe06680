package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

// searchCap bounds how many delayed jobs one search shows (the search reads
// every delayed job; the matches beyond the cap are counted, not shown).
const searchCap = 1000

// delayedRow is one delayed job.
type delayedRow struct {
	Pos      int64
	TS       int64
	At       time.Time
	Queue    string
	Digest   string
	Job      jobRow
	Sealed   bool // signed or encrypted: carries a resq id
	NoQueue  bool // stored without a queue: "enqueue now" makes it a failure record
	Detailed bool
}

func delayedRowOf(v resq.DelayedView, limit int) delayedRow {
	r := delayedRow{TS: v.At.Unix(), At: v.At, Queue: v.Queue, Digest: digest(v.Item), Job: jobRowOf(v.Job, limit)}
	r.Sealed = v.Job.ID != ""
	r.NoQueue = v.Queue == "" && v.Job.Invalid == ""
	return r
}

// tsRow is one due second on /delayed.
type tsRow struct {
	TS   int64
	At   time.Time
	Jobs int64
	Due  bool
	One  *delayedRow // the job, when the second holds exactly one
}

// delayedSummary is the head of the Delayed tab.
type delayedSummary struct {
	Jobs, Timestamps, DueJobs int64
	OldestDue                 time.Time // zero when nothing is due
	Lateness                  time.Duration
	Master                    string
	MasterErr                 string
	LockPrefix                string
}

type delayedData struct {
	Sum   delayedSummary
	Rows  []tsRow
	Pager pager
	Form  searchForm
}

// summarize counts the delayed queue from the full timestamp list.
func summarize(tss []resq.DelayedTimestamp, now time.Time) delayedSummary {
	var s delayedSummary
	for _, t := range tss {
		s.Timestamps++
		s.Jobs += t.Jobs
		if t.Jobs > 0 && !t.At.After(now) {
			s.DueJobs += t.Jobs
			if s.OldestDue.IsZero() {
				s.OldestDue = t.At
			}
		}
	}
	if !s.OldestDue.IsZero() {
		s.Lateness = now.Sub(s.OldestDue)
	}
	return s
}

func (h *Handler) master(ctx context.Context, s *delayedSummary) {
	s.LockPrefix = h.cfg.SchedulerLockPrefix
	m, err := h.admin.SchedulerMaster(ctx, h.cfg.SchedulerLockPrefix)
	if err != nil {
		s.MasterErr = err.Error()
		return
	}
	s.Master = m
}

func (h *Handler) delayed(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	start := startParam(r)
	tss, err := h.admin.DelayedTimestamps(ctx, resq.DelayedFilter{}, 0, -1)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read the delayed queue", err)
		return
	}
	now := time.Now()
	d := delayedData{Sum: summarize(tss, now)}
	h.master(ctx, &d.Sum)
	page := tss[min(start, int64(len(tss))):min(start+perPage, int64(len(tss)))]
	for _, t := range page {
		row := tsRow{TS: t.At.Unix(), At: t.At, Jobs: t.Jobs, Due: !t.At.After(now)}
		if t.Jobs == 1 {
			vs, err := h.admin.Delayed(ctx, resq.DelayedFilter{From: t.At, To: t.At}, 0, 1)
			if err != nil {
				h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read the delayed queue", err)
				return
			}
			if len(vs) == 1 {
				one := delayedRowOf(vs[0], argsListLimit)
				row.One = &one
			}
		}
		d.Rows = append(d.Rows, row)
	}
	d.Pager = newPager(start, int64(len(page)), int64(len(tss)), func(s int64) string {
		return h.path("/delayed") + "?start=" + strconv.FormatInt(s, 10)
	}, perPage)
	h.renderPage(w, r, p, "delayed", "Delayed", "delayed", d)
}

type delayedAtData struct {
	TS    int64
	At    time.Time
	Due   bool
	Total int64
	Rows  []delayedRow
	Pager pager
	Back  string
}

func (h *Handler) delayedAt(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	ts, err := strconv.ParseInt(r.PathValue("timestamp"), 10, 64)
	if err != nil {
		h.fail(w, r, p, http.StatusNotFound, "not a timestamp (seconds since 1970): "+truncate(r.PathValue("timestamp"), 100), nil)
		return
	}
	at := time.Unix(ts, 0)
	start := startParam(r)
	d := delayedAtData{TS: ts, At: at, Due: !at.After(time.Now()), Back: r.URL.RequestURI()}
	tss, err := h.admin.DelayedTimestamps(ctx, resq.DelayedFilter{From: at, To: at}, 0, 1)
	var vs []resq.DelayedView
	if err == nil {
		vs, err = h.admin.Delayed(ctx, resq.DelayedFilter{From: at, To: at}, int(start), perPage)
	}
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read the delayed queue", err)
		return
	}
	if len(tss) == 1 {
		d.Total = tss[0].Jobs
	}
	for i, v := range vs {
		row := delayedRowOf(v, argsDetailLimit)
		row.Pos = start + int64(i) + 1
		d.Rows = append(d.Rows, row)
	}
	base := h.path("/delayed", strconv.FormatInt(ts, 10))
	d.Pager = newPager(start, int64(len(vs)), d.Total, func(s int64) string {
		return base + "?start=" + strconv.FormatInt(s, 10)
	}, perPage)
	status := http.StatusOK
	if len(tss) == 0 {
		status = http.StatusNotFound
	}
	h.render(w, status, "delayed_at", h.newView(p, "Delayed at "+when(at), "delayed", d))
}

// searchForm is a delayed-job search: an exact class (as resque-scheduler's
// /delayed/jobs/CLASS), a queue, args as JSON, a resq job id.
type searchForm struct {
	Class, Queue, Args, ID string
}

func (s searchForm) empty() bool { return s.Class == "" && s.Queue == "" && s.Args == "" && s.ID == "" }

func (s searchForm) values() url.Values {
	v := url.Values{}
	for k, val := range map[string]string{"class": s.Class, "queue": s.Queue, "args": s.Args, "id": s.ID} {
		if val != "" {
			v.Set(k, val)
		}
	}
	return v
}

// describe names the search in an audit entry or message; the args are
// not repeated (audit entries and logs carry no argument values).
func (s searchForm) describe() string {
	var parts []string
	if s.Class != "" {
		parts = append(parts, "class "+s.Class)
	}
	if s.Queue != "" {
		parts = append(parts, "queue "+s.Queue)
	}
	if s.ID != "" {
		parts = append(parts, "id "+s.ID)
	}
	if s.Args != "" {
		parts = append(parts, "the given args")
	}
	return strings.Join(parts, ", ")
}

func (s searchForm) filter() (resq.DelayedFilter, error) {
	f := resq.DelayedFilter{Class: s.Class, Queue: s.Queue, ID: s.ID}
	if s.Args != "" {
		if !json.Valid([]byte(s.Args)) {
			return f, errors.New("args must be JSON, such as [42] or [{\"user_id\":42}]")
		}
		f.Args = json.RawMessage(s.Args)
	}
	return f, nil
}

func searchFormOf(v url.Values) searchForm {
	return searchForm{Class: strings.TrimSpace(v.Get("class")), Queue: strings.TrimSpace(v.Get("queue")),
		Args: strings.TrimSpace(v.Get("args")), ID: strings.TrimSpace(v.Get("id"))}
}

type delayedSearchData struct {
	Form    searchForm
	Query   string // the search's query string, for the bulk forms' back link
	Err     string
	Rows    []delayedRow
	Matched int
	Capped  bool
	Pager   pager
	Back    string
}

func (h *Handler) delayedSearch(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	form := searchFormOf(r.URL.Query())
	if c := r.PathValue("class"); c != "" {
		form.Class = c
	}
	d := delayedSearchData{Form: form, Back: r.URL.RequestURI(), Query: form.values().Encode()}
	if form.empty() {
		h.renderPage(w, r, p, "delayed_search", "Search delayed jobs", "delayed", d)
		return
	}
	f, err := form.filter()
	if err != nil {
		d.Err = err.Error()
		h.render(w, http.StatusBadRequest, "delayed_search", h.newView(p, "Search delayed jobs", "delayed", d))
		return
	}
	vs, err := h.admin.Delayed(ctx, f, 0, searchCap+1)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read the delayed queue", err)
		return
	}
	if len(vs) > searchCap {
		vs, d.Capped = vs[:searchCap], true
	}
	d.Matched = len(vs)
	start := min(startParam(r), int64(len(vs)))
	end := min(start+perPage, int64(len(vs)))
	for i, v := range vs[start:end] {
		row := delayedRowOf(v, argsListLimit)
		row.Pos = start + int64(i) + 1
		d.Rows = append(d.Rows, row)
	}
	d.Pager = newPager(start, end-start, int64(len(vs)), func(s int64) string {
		v := form.values()
		if s > 0 {
			v.Set("start", strconv.FormatInt(s, 10))
		}
		return h.path("/delayed/search") + "?" + v.Encode()
	}, perPage)
	h.renderPage(w, r, p, "delayed_search", "Search delayed jobs", "delayed", d)
}

// delayedTarget reads the timestamp (and the job's digest) of a
// per-timestamp or per-job action. With a digest it finds that job among
// the ones due at the timestamp: the page showed it, and it may have moved
// since. With all=1 it selects every job at the timestamp.
func (h *Handler) delayedTarget(ctx context.Context, r *http.Request) (ts int64, job *resq.DelayedView, err error) {
	ts, err = strconv.ParseInt(r.PostForm.Get("timestamp"), 10, 64)
	if err != nil {
		return 0, nil, errors.New("the form carries no timestamp")
	}
	want := r.PostForm.Get("digest")
	if want == "" {
		if r.PostForm.Get("all") != "1" {
			return ts, nil, errors.New("the form names no job (digest) and not all jobs (all=1); nothing was done")
		}
		return ts, nil, nil
	}
	at := time.Unix(ts, 0)
	vs, err := h.admin.Delayed(ctx, resq.DelayedFilter{From: at, To: at}, 0, -1)
	if err != nil {
		return ts, nil, err
	}
	for i := range vs {
		if digest(vs[i].Item) == want {
			return ts, &vs[i], nil
		}
	}
	return ts, nil, fmt.Errorf("that job is no longer due at %s (the scheduler may have moved it, or someone removed it); nothing was done", when(at))
}

// afterTimestamp is where an action on timestamp ts returns: the form's
// back page, unless it is that timestamp's page and the timestamp is gone.
func (h *Handler) afterTimestamp(ctx context.Context, r *http.Request, ts int64) {
	at := time.Unix(ts, 0)
	if tss, err := h.admin.DelayedTimestamps(ctx, resq.DelayedFilter{From: at, To: at}, 0, 1); err == nil && len(tss) == 0 {
		if strings.HasPrefix(r.PostForm.Get("back"), "/delayed/"+strconv.FormatInt(ts, 10)) {
			r.PostForm.Del("back")
		}
	}
}

func jobWord(n int64) string {
	if n == 1 {
		return "1 job"
	}
	return strconv.FormatInt(n, 10) + " jobs"
}

func (h *Handler) delayedQueueNow(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := context.WithTimeout(r.Context(), bulkTimeout)
	defer cancel()
	ts, job, err := h.delayedTarget(ctx, r)
	target := "delayed/" + strconv.FormatInt(ts, 10)
	if err != nil {
		h.record(r, p, "delayed.enqueue_now", target, err.Error(), false)
		h.done(w, r, p, "/delayed", "Enqueue now: "+err.Error(), true)
		return
	}
	at := time.Unix(ts, 0)
	if job == nil { // every job at ts
		n, err := h.admin.EnqueueDelayedNow(ctx, resq.DelayedFilter{From: at, To: at}, nil)
		h.record(r, p, "delayed.enqueue_now", target, fmt.Sprintf("all jobs: %d enqueued%s", n, errText(err)), err == nil)
		h.afterTimestamp(ctx, r, ts)
		if err != nil {
			h.done(w, r, p, "/delayed", fmt.Sprintf("Enqueued %s due at %s, then: %v", jobWord(int64(n)), when(at), err), true)
			return
		}
		h.done(w, r, p, "/delayed", fmt.Sprintf("Enqueued %s due at %s now.", jobWord(int64(n)), when(at)), false)
		return
	}
	class := job.Job.Class
	ok, err := h.admin.EnqueueDelayedItem(ctx, at, job.Item, nil)
	switch {
	case err != nil:
		h.record(r, p, "delayed.enqueue_now", target, "class "+class+errText(err), false)
		h.done(w, r, p, "/delayed", "Could not enqueue "+class+": "+err.Error(), true)
		return
	case !ok:
		msg := "class " + class + ": moved or removed by someone else first; nothing was done"
		h.record(r, p, "delayed.enqueue_now", target, msg, false)
		h.afterTimestamp(ctx, r, ts)
		h.done(w, r, p, "/delayed", "Enqueue now: "+msg+".", true)
		return
	}
	h.afterTimestamp(ctx, r, ts)
	if job.Queue == "" || job.Job.Invalid != "" {
		h.record(r, p, "delayed.enqueue_now", target, "class "+class+": no queue, became a failure record", true)
		h.done(w, r, p, "/delayed", "The job ("+class+") names no queue or is not a job, so it became a failure record.", true)
		return
	}
	h.record(r, p, "delayed.enqueue_now", target, "class "+class+" enqueued on "+job.Queue, true)
	h.done(w, r, p, "/delayed", fmt.Sprintf("Enqueued %s on %s now.", class, job.Queue), false)
}

func (h *Handler) delayedRemove(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := context.WithTimeout(r.Context(), bulkTimeout)
	defer cancel()
	ts, job, err := h.delayedTarget(ctx, r)
	target := "delayed/" + strconv.FormatInt(ts, 10)
	if err != nil {
		h.record(r, p, "delayed.remove", target, err.Error(), false)
		h.done(w, r, p, "/delayed", "Remove: "+err.Error(), true)
		return
	}
	at := time.Unix(ts, 0)
	var n int64
	detail := "all jobs"
	if job == nil {
		n, err = h.admin.RemoveDelayed(ctx, resq.DelayedFilter{From: at, To: at})
	} else {
		detail = "class " + job.Job.Class
		n, err = h.admin.RemoveDelayedItem(ctx, at, job.Item)
	}
	h.record(r, p, "delayed.remove", target, fmt.Sprintf("%s: %d removed%s", detail, n, errText(err)), err == nil)
	h.afterTimestamp(ctx, r, ts)
	if err != nil {
		h.done(w, r, p, "/delayed", fmt.Sprintf("Removed %s due at %s, then: %v", jobWord(n), when(at), err), true)
		return
	}
	h.done(w, r, p, "/delayed", fmt.Sprintf("Removed %s due at %s.", jobWord(n), when(at)), false)
}

// searchAction reads the search of a bulk form.
func (h *Handler) searchAction(r *http.Request) (searchForm, resq.DelayedFilter, string, error) {
	form := searchFormOf(r.PostForm)
	back := "/delayed/search?" + form.values().Encode()
	if form.empty() {
		return form, resq.DelayedFilter{}, "/delayed", errors.New("the search is empty; use Clear all to remove every delayed job")
	}
	f, err := form.filter()
	return form, f, back, err
}

func (h *Handler) delayedSearchQueueNow(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := context.WithTimeout(r.Context(), bulkTimeout)
	defer cancel()
	form, f, back, err := h.searchAction(r)
	if err != nil {
		h.record(r, p, "delayed.enqueue_now", "delayed/search", err.Error(), false)
		h.done(w, r, p, back, "Enqueue now: "+err.Error(), true)
		return
	}
	n, err := h.admin.EnqueueDelayedNow(ctx, f, nil)
	h.record(r, p, "delayed.enqueue_now", "delayed/search", fmt.Sprintf("%s: %d enqueued%s", form.describe(), n, errText(err)), err == nil)
	if err != nil {
		h.done(w, r, p, back, fmt.Sprintf("Enqueued %s, then: %v", jobWord(int64(n)), err), true)
		return
	}
	h.done(w, r, p, back, fmt.Sprintf("Enqueued %s matching %s now.", jobWord(int64(n)), form.describe()), false)
}

func (h *Handler) delayedSearchRemove(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := context.WithTimeout(r.Context(), bulkTimeout)
	defer cancel()
	form, f, back, err := h.searchAction(r)
	if err != nil {
		h.record(r, p, "delayed.remove", "delayed/search", err.Error(), false)
		h.done(w, r, p, back, "Remove: "+err.Error(), true)
		return
	}
	n, err := h.admin.RemoveDelayed(ctx, f)
	h.record(r, p, "delayed.remove", "delayed/search", fmt.Sprintf("%s: %d removed%s", form.describe(), n, errText(err)), err == nil)
	if err != nil {
		h.done(w, r, p, back, fmt.Sprintf("Removed %s, then: %v", jobWord(n), err), true)
		return
	}
	h.done(w, r, p, back, fmt.Sprintf("Removed %s matching %s.", jobWord(n), form.describe()), false)
}

func (h *Handler) delayedClear(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := context.WithTimeout(r.Context(), bulkTimeout)
	defer cancel()
	n, err := h.admin.RemoveDelayed(ctx, resq.DelayedFilter{})
	h.record(r, p, "delayed.clear", "delayed", fmt.Sprintf("%d removed%s", n, errText(err)), err == nil)
	r.PostForm.Del("back")
	if err != nil {
		h.done(w, r, p, "/delayed", fmt.Sprintf("Removed %s, then: %v", jobWord(n), err), true)
		return
	}
	h.done(w, r, p, "/delayed", fmt.Sprintf("Removed all %s from the delayed queue.", jobWord(n)), false)
}
