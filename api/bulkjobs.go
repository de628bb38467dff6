package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/store"
)

// Where bulk export jobs and their files are kept, and who runs them. Two implementations sit behind
// jobStore:
//
//   - storeJobs, when the store implements store.ExportJobs (MongoDB): jobs and files are in the
//     database, so every gpfhir process on it shares them. Each process polls for claimable jobs; a claim
//     holds a lease that the runner renews while it runs, and a job whose runner stopped renewing (the
//     process died) is claimed by another process once the lease has passed and run again from the start.
//     A job claimed maxClaims times without finishing is failed rather than claimed again.
//   - dirJobs otherwise (SQLite, one process per data directory): job.json and the ndjson files in one
//     directory per job under Config.ExportDir; the queue is in memory and refilled at start with the
//     jobs still in progress, which run again from the start.

var (
	// errNoJob: the job does not exist (never did, expired, or cancelled).
	errNoJob = errors.New("no such export job")
	// errJobLost: another runner claimed the job (this one's lease passed); stop running it.
	errJobLost = errors.New("export job claimed by another runner")
	// errQueueFull: the directory's in-memory queue is full.
	errQueueFull = errors.New("export queue full")
)

// maxClaims bounds how often a job is claimed: a job whose runner died that many times (an export
// that kills its process, say) is reported failed instead of passed on for ever.
const maxClaims = 5

// jobRun is one claim of a job: what the runner presents to save, renew and write files.
type jobRun struct {
	token  string
	claims int
}

type jobStore interface {
	// create persists a new job before its kick-off is answered. errQueueFull if it cannot be queued.
	create(ctx context.Context, job *exportJob) error
	// load reads a job; errNoJob if there is none.
	load(ctx context.Context, id string) (*exportJob, error)
	// save persists the job's state for run, renewing its lease to until; a finished job (Status not
	// in progress) is ended. errNoJob if the job was removed, errJobLost if another runner holds it.
	save(ctx context.Context, job *exportJob, run *jobRun, until time.Time) error
	// list reads every job, for expiry.
	list(ctx context.Context) ([]*exportJob, error)
	// remove removes a job and its files; no error if it is gone already.
	remove(ctx context.Context, id string) error
	// createFile starts a file of the job for run; errNoJob if the job was removed.
	createFile(ctx context.Context, id string, run *jobRun, name string) (store.ExportFile, error)
	// openFile streams a file of a finished job; errNoJob if the job or the file is gone.
	openFile(ctx context.Context, id, name string) (io.ReadCloser, error)
	// claim returns a job to run now, or nil when there is none.
	claim(ctx context.Context, now, until time.Time) (*exportJob, *jobRun, error)
	// renew extends run's lease to until; a zero until releases the job. Errors as save.
	renew(ctx context.Context, id string, run *jobRun, until time.Time) error
	// shared says whether other processes run the jobs too (leases matter).
	shared() bool
}

// storeJobs keeps jobs in a store that implements store.ExportJobs.
type storeJobs struct{ st store.ExportJobs }

func jobErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoJob
	case errors.Is(err, store.ErrVersionConflict):
		return errJobLost
	}
	return err
}

func decodeJob(j store.ExportJob) (*exportJob, error) {
	var job exportJob
	if err := json.Unmarshal(j.State, &job); err != nil {
		return nil, fmt.Errorf("export job %s: %w", j.ID, err)
	}
	return &job, nil
}

func (sj storeJobs) create(ctx context.Context, job *exportJob) error {
	raw, err := json.Marshal(job)
	if err != nil {
		return err
	}
	return sj.st.CreateExportJob(ctx, job.ID, raw)
}

func (sj storeJobs) load(ctx context.Context, id string) (*exportJob, error) {
	j, err := sj.st.ExportJob(ctx, id)
	if err != nil {
		return nil, jobErr(err)
	}
	return decodeJob(j)
}

func (sj storeJobs) save(ctx context.Context, job *exportJob, run *jobRun, until time.Time) error {
	raw, err := json.Marshal(job)
	if err != nil {
		return err
	}
	var finished time.Time
	if job.Status != jobRunning {
		finished, until = job.Finished, time.Time{}
	}
	return jobErr(sj.st.SaveExportJob(ctx, job.ID, run.token, raw, finished, until))
}

func (sj storeJobs) list(ctx context.Context) ([]*exportJob, error) {
	js, err := sj.st.ListExportJobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*exportJob, 0, len(js))
	for _, j := range js {
		if job, err := decodeJob(j); err == nil {
			out = append(out, job)
		}
	}
	return out, nil
}

func (sj storeJobs) remove(ctx context.Context, id string) error {
	return sj.st.RemoveExportJob(ctx, id)
}

func (sj storeJobs) createFile(ctx context.Context, id string, run *jobRun, name string) (store.ExportFile, error) {
	f, err := sj.st.CreateExportFile(ctx, id, run.token, name)
	return f, jobErr(err)
}

func (sj storeJobs) openFile(ctx context.Context, id, name string) (io.ReadCloser, error) {
	f, err := sj.st.OpenExportFile(ctx, id, name)
	return f, jobErr(err)
}

func (sj storeJobs) claim(ctx context.Context, now, until time.Time) (*exportJob, *jobRun, error) {
	token := newJobToken()
	j, err := sj.st.ClaimExportJob(ctx, token, now, until)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	job, err := decodeJob(j)
	if err != nil {
		return nil, nil, err
	}
	return job, &jobRun{token: token, claims: j.Claims}, nil
}

func (sj storeJobs) renew(ctx context.Context, id string, run *jobRun, until time.Time) error {
	return jobErr(sj.st.RenewExportJob(ctx, id, run.token, until))
}

func (storeJobs) shared() bool { return true }

// dirJobs keeps jobs in a directory, one process only.
type dirJobs struct {
	dir   string
	mu    sync.Mutex // serialises job.json writes and removals
	queue chan string
}

// openDirJobs opens the directory and queues the jobs a previous process left in progress, to be run
// again from the start (their files are rewritten).
func openDirJobs(dir string, log *slog.Logger) (*dirJobs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("export directory: %w", err)
	}
	dj := &dirJobs{dir: dir, queue: make(chan string, 1024)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		job, err := dj.load(context.Background(), e.Name())
		if err != nil || job.Status != jobRunning {
			continue
		}
		log.Info("bulk export resumed after a restart", "job", job.ID)
		select {
		case dj.queue <- job.ID:
		default:
		}
	}
	return dj, nil
}

func (dj *dirJobs) jobDir(id string) string { return filepath.Join(dj.dir, id) }

func (dj *dirJobs) create(ctx context.Context, job *exportJob) error {
	if err := os.MkdirAll(dj.jobDir(job.ID), 0o700); err != nil {
		return err
	}
	if err := dj.save(ctx, job, nil, time.Time{}); err != nil {
		return err
	}
	select {
	case dj.queue <- job.ID:
		return nil
	default:
		_ = dj.remove(ctx, job.ID)
		return errQueueFull
	}
}

func (dj *dirJobs) load(_ context.Context, id string) (*exportJob, error) {
	if !validID(id) {
		return nil, errNoJob
	}
	raw, err := os.ReadFile(filepath.Join(dj.jobDir(id), "job.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoJob
	}
	if err != nil {
		return nil, err
	}
	var job exportJob
	if err := json.Unmarshal(raw, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// save replaces job.json atomically, so that a crash leaves the old or the new state.
func (dj *dirJobs) save(_ context.Context, job *exportJob, _ *jobRun, _ time.Time) error {
	dj.mu.Lock()
	defer dj.mu.Unlock()
	dir := dj.jobDir(job.ID)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errNoJob // removed (cancelled): nothing to save
		}
		return err
	}
	raw, err := json.Marshal(job)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "job.json.tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "job.json"))
}

func (dj *dirJobs) list(ctx context.Context) ([]*exportJob, error) {
	entries, err := os.ReadDir(dj.dir)
	if err != nil {
		return nil, err
	}
	var out []*exportJob
	for _, e := range entries {
		if job, err := dj.load(ctx, e.Name()); err == nil {
			out = append(out, job)
		}
	}
	return out, nil
}

func (dj *dirJobs) remove(_ context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	dj.mu.Lock()
	defer dj.mu.Unlock()
	return os.RemoveAll(dj.jobDir(id))
}

func (dj *dirJobs) createFile(_ context.Context, id string, _ *jobRun, name string) (store.ExportFile, error) {
	path := filepath.Join(dj.jobDir(id), name)
	f, err := os.Create(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoJob // the job's directory was removed: cancelled
	}
	if err != nil {
		return nil, err
	}
	return dirFile{f}, nil
}

type dirFile struct{ *os.File }

func (f dirFile) Abort() error {
	_ = f.File.Close()
	return os.Remove(f.Name())
}

func (dj *dirJobs) openFile(_ context.Context, id, name string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(dj.jobDir(id), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoJob
	}
	return f, err
}

func (dj *dirJobs) claim(ctx context.Context, _, _ time.Time) (*exportJob, *jobRun, error) {
	for {
		select {
		case id := <-dj.queue:
			job, err := dj.load(ctx, id)
			if err != nil {
				continue // cancelled while queued
			}
			return job, &jobRun{}, nil
		default:
			return nil, nil, nil
		}
	}
}

func (dj *dirJobs) renew(context.Context, string, *jobRun, time.Time) error { return nil }

func (dj *dirJobs) shared() bool { return false }

func newJobToken() string { return uuid.NewString() }

// exports runs the jobs: a dispatcher that claims a job whenever one of the bounded workers is free,
// and the cancel function and claim of each job running here.
type exports struct {
	jobs jobStore
	ttl  time.Duration
	// lease is how long a claim holds without renewal; runners renew every third of it.
	lease time.Duration
	// poll is how often an idle dispatcher looks for claimable jobs (a kick-off here wakes it at once).
	poll time.Duration
	// page is how many resources are read from the store, and written, between two saves.
	page    int
	wake    chan struct{}
	mu      sync.Mutex
	running map[string]*runningJob
	wg      sync.WaitGroup
	stop    context.CancelFunc
	// afterPage, when set (tests only), is called after every page a runner saved.
	afterPage func(ctx context.Context, id string)
}

type runningJob struct {
	cancel context.CancelFunc
	run    *jobRun
}

// poke wakes the dispatcher: a job was queued here, or a worker became free.
func (ex *exports) poke() {
	select {
	case ex.wake <- struct{}{}:
	default:
	}
}

// runOf returns the claim under which this process runs a job.
func (ex *exports) runOf(id string) *jobRun {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if r, ok := ex.running[id]; ok {
		return r.run
	}
	return &jobRun{}
}

// startExports chooses where jobs are kept and starts the dispatcher and the expiry loop.
func (s *Server) startExports() error {
	if !s.cfg.Export && s.cfg.ExportDir == "" {
		return nil
	}
	var jobs jobStore
	if ej, ok := s.cfg.Store.(store.ExportJobs); ok {
		jobs = storeJobs{ej}
	} else {
		if s.cfg.ExportDir == "" {
			return errors.New("api: bulk export on this store needs an export directory (--export-dir)")
		}
		dj, err := openDirJobs(s.cfg.ExportDir, s.log)
		if err != nil {
			return err
		}
		jobs = dj
	}
	workers := s.cfg.ExportWorkers
	if workers <= 0 {
		workers = 2
	}
	ttl := s.cfg.ExportTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	ex := &exports{jobs: jobs, ttl: ttl, lease: s.cfg.exportLease, poll: s.cfg.exportPoll, page: s.cfg.exportPage,
		wake: make(chan struct{}, 1), running: map[string]*runningJob{}, afterPage: s.cfg.exportAfterPage}
	if ex.lease <= 0 {
		ex.lease = 30 * time.Second
	}
	if ex.poll <= 0 {
		ex.poll = 2 * time.Second
	}
	if ex.page <= 0 {
		ex.page = 500
	}
	ctx, stop := context.WithCancel(context.Background())
	ex.stop = stop
	s.exports = ex
	ex.wg.Add(1)
	go func() {
		defer ex.wg.Done()
		s.dispatchExports(ctx, workers)
	}()
	ex.wg.Add(1)
	go func() {
		defer ex.wg.Done()
		every := s.cfg.exportExpiry
		if every <= 0 {
			every = min(ttl/4+time.Second, time.Minute)
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				ex.expire(ctx, s.now(), s.log)
			}
		}
	}()
	return nil
}

// dispatchExports claims a job whenever a worker is free, and runs it.
func (s *Server) dispatchExports(ctx context.Context, workers int) {
	ex := s.exports
	free := make(chan struct{}, workers)
	t := time.NewTicker(ex.poll)
	defer t.Stop()
	for {
		select {
		case free <- struct{}{}:
		case <-ctx.Done():
			return
		}
		now := time.Now()
		job, run, err := ex.jobs.claim(ctx, now, now.Add(ex.lease))
		if err != nil && ctx.Err() == nil {
			s.log.Warn("bulk export: looking for jobs to run", "error", err)
		}
		if job == nil {
			<-free
			select {
			case <-ctx.Done():
				return
			case <-ex.wake:
			case <-t.C:
			}
			continue
		}
		ex.wg.Add(1)
		go func() {
			defer ex.wg.Done()
			defer ex.poke()
			defer func() { <-free }()
			s.runExport(ctx, job, run)
		}()
	}
}

func (s *Server) stopExports() {
	if s.exports == nil {
		return
	}
	s.exports.stop()
	s.exports.mu.Lock()
	for _, r := range s.exports.running {
		r.cancel()
	}
	s.exports.mu.Unlock()
	s.exports.wg.Wait()
}

// expire removes finished jobs older than the time to live, with their files. With a shared store
// every process does it; removing twice is harmless.
func (ex *exports) expire(ctx context.Context, now time.Time, log *slog.Logger) {
	jobs, err := ex.jobs.list(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("bulk export expiry", "error", err)
		}
		return
	}
	for _, job := range jobs {
		if job.Status == jobRunning || job.Finished.IsZero() || now.Sub(job.Finished) < ex.ttl {
			continue
		}
		if err := ex.jobs.remove(ctx, job.ID); err != nil {
			log.Warn("bulk export expiry", "job", job.ID, "error", err)
		}
	}
}

// keepLease renews a shared job's lease every third of it until ctx ends, and cancels the run when
// the job was removed (cancelled on some process, or expired) or claimed by another runner.
func (ex *exports) keepLease(ctx context.Context, id string, run *jobRun, cancel context.CancelFunc, log *slog.Logger) {
	t := time.NewTicker(ex.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := ex.jobs.renew(ctx, id, run, time.Now().Add(ex.lease))
		switch {
		case errors.Is(err, errNoJob), errors.Is(err, errJobLost):
			cancel()
			return
		case err != nil && ctx.Err() == nil:
			log.Warn("bulk export: renewing the claim", "error", err)
		}
	}
}
