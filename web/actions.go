package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// bulkTimeout bounds actions that touch many records (retry all, clear
// retried).
const bulkTimeout = 2 * time.Minute

// done ends an action: a one-shot message for the next page, then a 303 to
// the form's "back" path (when it is a local path) or to fallback.
//
// When the action's audit entry could not be written, the message says so
// and is shown as an error: the action happened, but the audit log lacks it.
func (h *Handler) done(w http.ResponseWriter, r *http.Request, p principal, fallback, msg string, isErr bool) {
	if a := auditFailure(r); a != "" {
		msg, isErr = msg+a, true
	}
	h.sessions.setFlash(p.sid, msg, isErr)
	back := fallback
	if b := r.PostForm.Get("back"); b != "" {
		if s := safeNext(b); s != "/" || b == "/" {
			back = s
		}
	}
	http.Redirect(w, r, h.prefix+back, http.StatusSeeOther)
}

func (h *Handler) clearQueue(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	name := r.PathValue("name")
	n, err := h.admin.ClearQueue(ctx, name)
	h.record(r, p, "queue.clear", "queue/"+name, fmt.Sprintf("%d jobs deleted", n), err == nil)
	if err != nil {
		h.done(w, r, p, "/queues/"+escapeSegment(name), "Could not clear queue "+name+": "+err.Error(), true)
		return
	}
	h.done(w, r, p, "/queues/"+escapeSegment(name), fmt.Sprintf("Cleared queue %s: %d jobs deleted.", name, n), false)
}

func (h *Handler) removeQueue(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	name := r.PathValue("name")
	n, _ := h.admin.QueueSize(ctx, name)
	err := h.admin.RemoveQueue(ctx, name)
	h.record(r, p, "queue.remove", "queue/"+name, fmt.Sprintf("%d jobs deleted", n), err == nil)
	if err != nil {
		h.done(w, r, p, "/queues", "Could not remove queue "+name+": "+err.Error(), true)
		return
	}
	r.PostForm.Del("back") // the queue's page is gone
	h.done(w, r, p, "/queues", fmt.Sprintf("Removed queue %s and its %d jobs.", name, n), false)
}

// failureIndex reads the {index} of a per-record action and checks that the
// record there is still the one the page showed (form field "digest"):
// indexes shift when other records are removed.
func (h *Handler) failureIndex(ctx context.Context, r *http.Request) (int64, string, error) {
	idx, err := strconv.ParseInt(r.PathValue("index"), 10, 64)
	if err != nil || idx < 0 {
		return 0, "", errors.New("not a failure index")
	}
	fs, err := h.admin.Failures(ctx, idx, 1)
	if err != nil {
		return idx, "", err
	}
	if len(fs) == 0 {
		return idx, "", fmt.Errorf("there is no failure %d any more", idx)
	}
	if want := r.PostForm.Get("digest"); want == "" || want != digest(fs[0].Raw) {
		return idx, "", fmt.Errorf("the failed list changed since the page was loaded (failure %d is now another record); nothing was done", idx)
	}
	return idx, fs[0].Job.Class, nil
}

func (h *Handler) retryOne(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	idx, class, err := h.failureIndex(ctx, r)
	target := "failed/" + strconv.FormatInt(idx, 10)
	if err != nil {
		h.record(r, p, "failure.retry", target, err.Error(), false)
		h.done(w, r, p, "/failed", "Retry: "+err.Error(), true)
		return
	}
	queue, err := h.admin.RetryFailure(ctx, idx)
	if err != nil {
		h.record(r, p, "failure.retry", target, "class "+class+": "+err.Error(), false)
		h.done(w, r, p, "/failed", "Could not retry failure "+strconv.FormatInt(idx, 10)+": "+err.Error(), true)
		return
	}
	h.record(r, p, "failure.retry", target, "class "+class+" requeued on "+queue, true)
	h.done(w, r, p, "/failed", fmt.Sprintf("Failure %d (%s) was requeued on %s.", idx, class, queue), false)
}

func (h *Handler) removeOne(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	idx, class, err := h.failureIndex(ctx, r)
	target := "failed/" + strconv.FormatInt(idx, 10)
	if err == nil {
		err = h.admin.RemoveFailure(ctx, idx)
	}
	h.record(r, p, "failure.remove", target, "class "+class+errText(err), err == nil)
	if err != nil {
		h.done(w, r, p, "/failed", "Could not remove failure "+strconv.FormatInt(idx, 10)+": "+err.Error(), true)
		return
	}
	// The record's own page now shows another record: go to the list.
	back := r.PostForm.Get("back")
	if back == "/failed/"+strconv.FormatInt(idx, 10) {
		r.PostForm.Del("back")
	}
	h.done(w, r, p, "/failed", fmt.Sprintf("Removed failure %d (%s).", idx, class), false)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func (h *Handler) retryAll(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := context.WithTimeout(r.Context(), bulkTimeout)
	defer cancel()
	n, err := h.admin.RetryAllFailures(ctx, nil)
	h.record(r, p, "failure.retry_all", "failed", fmt.Sprintf("%d requeued%s", n, errText(err)), err == nil)
	if err != nil {
		h.done(w, r, p, "/failed", fmt.Sprintf("Requeued %d failures, then: %v", n, err), true)
		return
	}
	h.done(w, r, p, "/failed", fmt.Sprintf("Requeued all %d failures.", n), false)
}

func (h *Handler) clearFailures(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := h.reqCtx(r)
	defer cancel()
	n, err := h.admin.ClearFailures(ctx)
	h.record(r, p, "failure.clear", "failed", fmt.Sprintf("%d removed%s", n, errText(err)), err == nil)
	if err != nil {
		h.done(w, r, p, "/failed", "Could not clear the failed list: "+err.Error(), true)
		return
	}
	r.PostForm.Del("back")
	h.done(w, r, p, "/failed", fmt.Sprintf("Cleared the failed list (%d records).", n), false)
}

func (h *Handler) clearRetried(w http.ResponseWriter, r *http.Request, p principal) {
	ctx, cancel := context.WithTimeout(r.Context(), bulkTimeout)
	defer cancel()
	n, err := h.admin.ClearRetriedFailures(ctx)
	h.record(r, p, "failure.clear_retried", "failed", fmt.Sprintf("%d removed%s", n, errText(err)), err == nil)
	if err != nil {
		h.done(w, r, p, "/failed", fmt.Sprintf("Removed %d retried failures, then: %v", n, err), true)
		return
	}
	r.PostForm.Del("back")
	h.done(w, r, p, "/failed", fmt.Sprintf("Removed %d retried failures.", n), false)
}
