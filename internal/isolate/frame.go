package isolate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The warm-child protocol: the worker writes jobs on the child's fd 3,
// reads results on its fd 4, and writes cancellations on its fd 5 (a pipe
// of their own, so that the child's main loop reads jobs directly, with no
// goroutine hand-off per job); stdout and stderr stay free for the
// handler's own output. Each frame is a 4-byte big-endian length, a type
// byte, and fields: unsigned varints, and byte strings prefixed by their
// length as a varint. One job runs at a time per child; the worker may send
// the next ones while it runs (they wait in the pipe, in order), and a
// cancellation of a job the child has not read yet withdraws it: the child
// answers StatusWithdrawn at once and skips the job when it reads it.

// Frame types.
const (
	frameJob      = 'J' // worker → child: run a job
	frameCancel   = 'C' // worker → child (fd 5): cancel the job (withdraw it if not started)
	frameWithdraw = 'W' // worker → child (fd 5): withdraw the job if not started, else nothing
	frameResult   = 'R' // child → worker: a job's outcome
	frameReady    = 'H' // child → worker: ready to serve (first frame)
)

// maxFrame bounds a frame (a job's args are limited far below this).
const maxFrame = 64 << 20

// Request is one job sent to a child.
type Request struct {
	Seq                   uint64
	Class, Queue, ID      string
	WorkerID              string
	EnqueuedAt, StartedAt int64 // Unix nanoseconds; 0 for none
	Timeout               int64 // nanoseconds the handler may run; 0 for none
	Encrypted, Signed     bool
	// ReportCPU asks for the child's CPU time in the response (a worker
	// enforcing a CPU-time limit needs it; others spare the syscall).
	ReportCPU bool
	Args      []byte
}

// Status of a job run in a child.
const (
	StatusOK      = 0
	StatusError   = 1
	StatusSkipped = 2 // the handler returned ErrDontPerform
	// StatusWithdrawn: the job was cancelled before the child read it, and
	// was not run (sent by the child's cancellation reader).
	StatusWithdrawn = 3
)

// Response is a job's outcome, or the child's ready message.
type Response struct {
	Seq       uint64
	Status    uint8
	CPU       int64 // the child's total CPU time so far, nanoseconds
	Exception string
	Message   string
	Backtrace []string
	ready     bool
}

type frameBuf []byte

func (b frameBuf) uvarint(v uint64) frameBuf { return binary.AppendUvarint(b, v) }
func (b frameBuf) bytes(p []byte) frameBuf {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}
func (b frameBuf) str(s string) frameBuf {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func frame(typ byte, body func(frameBuf) frameBuf) []byte {
	b := frameBuf(make([]byte, 5, 128))
	b[4] = typ
	b = body(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func encodeCancel(seq uint64) []byte {
	return frame(frameCancel, func(b frameBuf) frameBuf { return b.uvarint(seq) })
}

func encodeWithdraw(seq uint64) []byte {
	return frame(frameWithdraw, func(b frameBuf) frameBuf { return b.uvarint(seq) })
}

func encodeRequest(r *Request) []byte {
	return frame(frameJob, func(b frameBuf) frameBuf {
		var flags uint64
		if r.Encrypted {
			flags |= 1
		}
		if r.Signed {
			flags |= 2
		}
		if r.ReportCPU {
			flags |= 4
		}
		b = b.uvarint(r.Seq).str(r.Class).str(r.Queue).str(r.ID).str(r.WorkerID)
		b = b.uvarint(uint64(r.EnqueuedAt)).uvarint(uint64(r.StartedAt)).uvarint(uint64(r.Timeout)).uvarint(flags)
		return b.bytes(r.Args)
	})
}

func encodeResponse(r *Response) []byte {
	typ := byte(frameResult)
	if r.ready {
		typ = frameReady
	}
	return frame(typ, func(b frameBuf) frameBuf {
		b = b.uvarint(r.Seq).uvarint(uint64(r.Status)).uvarint(uint64(r.CPU)).str(r.Exception).str(r.Message)
		b = b.uvarint(uint64(len(r.Backtrace)))
		for _, l := range r.Backtrace {
			b = b.str(l)
		}
		return b
	})
}

// frameReader decodes fields of one frame.
type frameReader struct {
	b   []byte
	err error
}

func (r *frameReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("malformed frame")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *frameReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("malformed frame")
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *frameReader) str() string { return string(r.bytes()) }

func readFrame(br *bufio.Reader) (byte, *frameReader, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 || n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil, err
	}
	return hdr[4], &frameReader{b: body}, nil
}

// readCancel reads the next cancellation: the Seq of the job to cancel,
// and whether it is only to be withdrawn (if not started).
func readCancel(br *bufio.Reader) (seq uint64, withdrawOnly bool, err error) {
	typ, fr, err := readFrame(br)
	if err != nil {
		return 0, false, err
	}
	if typ != frameCancel && typ != frameWithdraw {
		return 0, false, fmt.Errorf("unknown cancel frame %q", typ)
	}
	seq = fr.uvarint()
	return seq, typ == frameWithdraw, fr.err
}

// ReadRequest reads the next job.
func ReadRequest(br *bufio.Reader) (*Request, error) {
	typ, fr, err := readFrame(br)
	if err != nil {
		return nil, err
	}
	r := &Request{}
	switch typ {
	case frameJob:
		r.Seq = fr.uvarint()
		r.Class, r.Queue, r.ID, r.WorkerID = fr.str(), fr.str(), fr.str(), fr.str()
		r.EnqueuedAt, r.StartedAt, r.Timeout = int64(fr.uvarint()), int64(fr.uvarint()), int64(fr.uvarint())
		flags := fr.uvarint()
		r.Encrypted, r.Signed, r.ReportCPU = flags&1 != 0, flags&2 != 0, flags&4 != 0
		r.Args = fr.bytes()
	default:
		return nil, fmt.Errorf("unknown request frame %q", typ)
	}
	return r, fr.err
}

// splitFrame returns the first complete frame in buf (type and body) and
// the bytes after it; ok is false while the frame is incomplete.
func splitFrame(buf []byte) (typ byte, body, rest []byte, ok bool, err error) {
	if len(buf) < 5 {
		return 0, nil, buf, false, nil
	}
	n := binary.BigEndian.Uint32(buf[:4])
	if n < 1 || n > maxFrame {
		return 0, nil, buf, false, fmt.Errorf("frame of %d bytes", n)
	}
	if uint64(len(buf)) < 4+uint64(n) {
		return 0, nil, buf, false, nil
	}
	return buf[4], buf[5 : 4+n], buf[4+n:], true, nil
}

func parseResponse(typ byte, body []byte) (*Response, error) {
	return decodeResponse(typ, &frameReader{b: body})
}

func readResponse(br *bufio.Reader) (*Response, error) {
	typ, fr, err := readFrame(br)
	if err != nil {
		return nil, err
	}
	return decodeResponse(typ, fr)
}

func decodeResponse(typ byte, fr *frameReader) (*Response, error) {
	if typ != frameResult && typ != frameReady {
		return nil, fmt.Errorf("unknown response frame %q", typ)
	}
	r := &Response{ready: typ == frameReady}
	r.Seq = fr.uvarint()
	r.Status = uint8(fr.uvarint())
	r.CPU = int64(fr.uvarint())
	r.Exception, r.Message = fr.str(), fr.str()
	n := fr.uvarint()
	if n > 10000 {
		return nil, errors.New("malformed frame")
	}
	for i := uint64(0); i < n && fr.err == nil; i++ {
		r.Backtrace = append(r.Backtrace, fr.str())
	}
	return r, fr.err
}
