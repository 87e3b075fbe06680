package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/resq-go/resq"
)

// ScheduleEntry is one recurring schedule as the Schedule tab shows it
// (the fields of resq.ScheduleView).
type ScheduleEntry struct {
	Name  string
	Class string
	Queue string // "" when the config names none
	// Args, when given, is shown through the namespace's redactor; resq's
	// Admin.Schedules gives only ArgsSize, and the tab then shows the size.
	Args     json.RawMessage
	ArgsSize int
	Cron     string // "0 * * * *", maybe with a time zone; or ""
	Every    string // "15m"; or ""
	// Description is free text from the config.
	Description string
	// Source says where the schedule comes from: "static" (a schedule
	// file) or "persistent" (Ruby's persistent_schedules).
	Source string
	// Envs is the rails_env/env filter; empty: every environment.
	Envs []string
	// Removable is set for schedules RemoveSchedule can delete (persistent
	// ones); a static schedule is changed in its file.
	Removable bool
	// NextRun is the next fire time; zero when it never fires or is unknown.
	NextRun time.Time
	// LastRun is when a scheduler last enqueued it (Ruby's
	// delayed:last_enqueued_at); zero when never.
	LastRun time.Time
	// Problem says why the schedule cannot fire (its config does not
	// parse); the other fields may then be empty.
	Problem string
}

// Schedules is what the Schedule tab reads and changes: a few lines over
// resq.Admin's Schedules, EnqueueScheduleNow and RemoveSchedule (with the
// schedule file the schedulers load), set in Config.Schedules.
type Schedules interface {
	// Schedules lists every recurring schedule.
	Schedules(ctx context.Context) ([]ScheduleEntry, error)
	// EnqueueScheduleNow enqueues the schedule's job now, as its next
	// tick would, and returns the queue it went to.
	EnqueueScheduleNow(ctx context.Context, name string) (queue string, err error)
	// RemoveSchedule deletes a removable (dynamic) schedule.
	RemoveSchedule(ctx context.Context, name string) error
}

type scheduleRow struct {
	ScheduleEntry
	ArgsText string
	Interval string
}

type scheduleData struct {
	Configured bool
	Rows       []scheduleRow
	Sum        delayedSummary // master only
	Err        string
}

// scheduleArgs shows a schedule's args through the same redactor as jobs'.
func scheduleArgs(red *resq.Redactor, class string, args json.RawMessage) string {
	if len(args) == 0 {
		return "[]"
	}
	if red != nil {
		args = red.Args(class, args)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return "invalid args (not shown)"
	}
	return truncate(buf.String(), argsListLimit)
}

func (h *Handler) schedule(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	d := scheduleData{Configured: h.cfg.Schedules != nil}
	h.master(ctx, &d.Sum)
	if !d.Configured {
		h.renderPage(w, r, p, "schedule", "Schedule", "schedule", d)
		return
	}
	es, err := h.cfg.Schedules.Schedules(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read the recurring schedules", err)
		return
	}
	red, err := h.admin.Redactor(ctx)
	if err != nil {
		h.fail(w, r, p, http.StatusServiceUnavailable, "cannot read the redaction rules", err)
		return
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	for _, e := range es {
		row := scheduleRow{ScheduleEntry: e, ArgsText: scheduleArgs(red, e.Class, e.Args)}
		if len(e.Args) == 0 && e.ArgsSize > 0 {
			row.ArgsText = fmt.Sprintf("%d bytes (not shown)", e.ArgsSize)
		}
		switch {
		case e.Cron != "":
			row.Interval = "cron: " + e.Cron
		case e.Every != "":
			row.Interval = "every: " + e.Every
		default:
			row.Interval = "never (enqueue by hand)"
		}
		d.Rows = append(d.Rows, row)
	}
	h.renderPage(w, r, p, "schedule", "Schedule", "schedule", d)
}

// scheduleForm reads the schedule a form acts on; when there is none to act
// on (no schedule source, no name) it records and answers the refusal.
func (h *Handler) scheduleForm(w http.ResponseWriter, r *http.Request, p principal, action, verb string) (name, target string, ok bool) {
	name = r.PostForm.Get("job_name")
	target = "schedule/" + name
	if h.cfg.Schedules != nil && name != "" {
		return name, target, true
	}
	msg := "this dashboard has no schedule source"
	if name == "" {
		msg = "the form names no schedule (job_name)"
	}
	h.record(r, p, action, target, msg, false)
	h.done(w, r, p, "/schedule", verb+": "+msg+".", true)
	return name, target, false
}

func (h *Handler) scheduleRequeue(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	name, target, ok := h.scheduleForm(w, r, p, "schedule.enqueue_now", "Enqueue now")
	if !ok {
		return
	}
	queue, err := h.cfg.Schedules.EnqueueScheduleNow(ctx, name)
	if err != nil {
		h.record(r, p, "schedule.enqueue_now", target, err.Error(), false)
		h.done(w, r, p, "/schedule", "Could not enqueue schedule "+name+": "+err.Error(), true)
		return
	}
	h.record(r, p, "schedule.enqueue_now", target, "enqueued on "+queue, true)
	h.done(w, r, p, "/schedule", fmt.Sprintf("Enqueued schedule %s on %s now.", name, queue), false)
}

func (h *Handler) scheduleRemove(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	name, target, ok := h.scheduleForm(w, r, p, "schedule.remove", "Remove")
	if !ok {
		return
	}
	err := h.cfg.Schedules.RemoveSchedule(ctx, name)
	h.record(r, p, "schedule.remove", target, errText(err), err == nil)
	if err != nil {
		h.done(w, r, p, "/schedule", "Could not remove schedule "+name+": "+err.Error(), true)
		return
	}
	h.done(w, r, p, "/schedule", "Removed schedule "+name+".", false)
}

// AdminSchedules is the Schedules of resq's Admin: the persistent schedules
// in Redis (Ruby's persistent_schedules) and, when static is not nil, the
// schedule file the schedulers load. "Enqueue now" pushes the schedule's
// job unsigned, as a tick of a scheduler without a keyring does.
func AdminSchedules(admin *resq.Admin, static *resq.Schedule) Schedules {
	return adminSchedules{admin: admin, static: static}
}

type adminSchedules struct {
	admin  *resq.Admin
	static *resq.Schedule
}

func (s adminSchedules) Schedules(ctx context.Context) ([]ScheduleEntry, error) {
	vs, err := s.admin.Schedules(ctx, s.static)
	out := make([]ScheduleEntry, len(vs))
	for i, v := range vs {
		out[i] = ScheduleEntry{Name: v.Name, Class: v.Class, Queue: v.Queue, ArgsSize: v.ArgsSize,
			Cron: v.Cron, Every: v.Every, Description: v.Description, Source: v.Source, Envs: v.Envs,
			Removable: v.Source == "persistent", NextRun: v.Next, LastRun: v.LastRun, Problem: v.Problem}
	}
	return out, err
}

func (s adminSchedules) EnqueueScheduleNow(ctx context.Context, name string) (string, error) {
	e, err := s.admin.EnqueueScheduleNow(ctx, s.static, name, nil, nil)
	if err != nil {
		return "", err
	}
	return e.Queue, nil
}

func (s adminSchedules) RemoveSchedule(ctx context.Context, name string) error {
	ok, err := s.admin.RemoveSchedule(ctx, name)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not a persistent schedule; change the schedule file instead", name)
	}
	return err
}
