package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gpfhir/gpfhir/store"
)

// Bulk export jobs, shared by every process on the database (store.ExportJobs). See doc.go, "Bulk
// export jobs", for the claim and lease rules.
const (
	collExportJobs   = "export_jobs"
	collExportClaims = "export_claims"
	exportBucket     = "export" // GridFS: export.files and export.chunks
)

var _ store.ExportJobs = (*Store)(nil)

type exportJobDoc struct {
	ID     string `bson:"_id"`
	State  []byte `bson:"st"`
	Fin    int64  `bson:"fin"`   // Unix ms; 0 while the job is to run
	Claim  string `bson:"claim"` // the holder's token
	Lease  int64  `bson:"lease"` // Unix ms; 0 when never claimed or released
	Claims int    `bson:"n"`     // claims so far
}

func (d exportJobDoc) job() store.ExportJob {
	j := store.ExportJob{ID: d.ID, State: d.State, Claim: d.Claim, Claims: d.Claims}
	if d.Fin != 0 {
		j.Finished = fromMillis(d.Fin)
	}
	if d.Lease != 0 {
		j.Lease = fromMillis(d.Lease)
	}
	return j
}

// claimDoc is the unique mark of claim number n of a job: of several processes claiming the job at
// claim count n-1, the one whose insert succeeds proceeds. The job document's own compare-and-swap on
// n would do on MongoDB, but FerretDB evaluates an update's filter and writes in two steps, so two
// claimers could both match it.
type claimDoc struct {
	ID  string `bson:"_id"` // job/n
	Job string `bson:"job"`
	At  int64  `bson:"at"` // Unix ms, the claimer's now
}

// msOrZero keeps the zero time as 0 (the Unix ms of time.Time{} is a large negative number).
func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return millis(t)
}

func (s *Store) exportJobs() *mongo.Collection { return s.db.Collection(collExportJobs) }

// bucket returns a GridFS bucket for one file operation: the driver's bucket memoises its first
// write without a lock, so one per operation keeps concurrent runners apart.
func (s *Store) bucket() *mongo.GridFSBucket {
	return s.db.GridFSBucket(options.GridFSBucket().SetName(exportBucket))
}

// fileID is a file's GridFS id: the job, the claim that wrote it and its name. The job prefix lets a
// job's files be removed together, written by whichever claim, even those a dead runner never closed
// (GridFS chunks carry only the file id).
func fileID(id, claim, name string) string { return id + "/" + claim + "/" + name }

func jobPrefix(id string) bson.Regex {
	return bson.Regex{Pattern: "^" + regexp.QuoteMeta(id+"/")}
}

// CreateExportJob inserts the job, unclaimed; the unique _id makes a taken id ErrVersionConflict.
func (s *Store) CreateExportJob(ctx context.Context, id string, state []byte) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err := s.exportJobs().InsertOne(ctx, exportJobDoc{ID: id, State: state})
	return translate("export job create", err)
}

// ExportJob reads one job.
func (s *Store) ExportJob(ctx context.Context, id string) (store.ExportJob, error) {
	if err := s.begin(); err != nil {
		return store.ExportJob{}, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var d exportJobDoc
	if err := s.exportJobs().FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.ExportJob{}, translate("export job read", err)
	}
	return d.job(), nil
}

// ListExportJobs reads every job.
func (s *Store) ListExportJobs(ctx context.Context) ([]store.ExportJob, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := s.exportJobs().Find(ctx, bson.D{})
	if err != nil {
		return nil, translate("export job list", err)
	}
	var ds []exportJobDoc
	if err := cur.All(ctx, &ds); err != nil {
		return nil, translate("export job list", err)
	}
	out := make([]store.ExportJob, len(ds))
	for i, d := range ds {
		out[i] = d.job()
	}
	return out, nil
}

// ClaimExportJob reads claimable jobs, oldest lease first (never-claimed and released jobs have
// lease 0), and claims the first whose claim mark it can insert.
func (s *Store) ClaimExportJob(ctx context.Context, claim string, now, until time.Time) (store.ExportJob, error) {
	if err := s.begin(); err != nil {
		return store.ExportJob{}, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := s.exportJobs().Find(ctx,
		bson.D{{Key: "fin", Value: int64(0)}, {Key: "lease", Value: bson.D{{Key: "$lt", Value: millis(now)}}}},
		options.Find().SetSort(bson.D{{Key: "lease", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(8).
			SetProjection(bson.D{{Key: "st", Value: 0}}))
	if err != nil {
		return store.ExportJob{}, translate("export claim scan", err)
	}
	var ds []exportJobDoc
	if err := cur.All(ctx, &ds); err != nil {
		return store.ExportJob{}, translate("export claim scan", err)
	}
	lease := until.Sub(now)
	for _, d := range ds {
		mark := fmt.Sprintf("%s/%d", d.ID, d.Claims+1)
		_, err := s.db.Collection(collExportClaims).InsertOne(ctx, claimDoc{ID: mark, Job: d.ID, At: millis(now)})
		if isDuplicate(err) {
			// Another claimer got there first, or one died between its mark and its update. A mark
			// older than a lease is the latter: remove it, so that the job is claimable at the next
			// poll. That is harmless even when the mark was used, because the update below only
			// matches the claim count the mark was made for.
			_, _ = s.db.Collection(collExportClaims).DeleteOne(ctx,
				bson.D{{Key: "_id", Value: mark}, {Key: "at", Value: bson.D{{Key: "$lt", Value: millis(now.Add(-lease))}}}})
			continue
		}
		if err != nil {
			return store.ExportJob{}, translate("export claim", err)
		}
		res, err := s.exportJobs().UpdateOne(ctx,
			bson.D{{Key: "_id", Value: d.ID}, {Key: "n", Value: d.Claims}, {Key: "fin", Value: int64(0)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "claim", Value: claim}, {Key: "lease", Value: msOrZero(until)}, {Key: "n", Value: d.Claims + 1}}}})
		if err != nil {
			return store.ExportJob{}, translate("export claim", err)
		}
		if res.MatchedCount == 0 {
			continue // removed, finished or claimed meanwhile
		}
		// The run starts again from the start: earlier claims' files are of no use any more.
		if err := s.removeExportFiles(ctx, d.ID); err != nil {
			return store.ExportJob{}, err
		}
		var got exportJobDoc
		if err := s.exportJobs().FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}).Decode(&got); err != nil {
			return store.ExportJob{}, translate("export claim read", err)
		}
		return got.job(), nil
	}
	return store.ExportJob{}, store.ErrNotFound
}

// heldBy answers a compare-and-swap on the claim that matched nothing: removed, or held by another.
func (s *Store) heldBy(ctx context.Context, id string) error {
	n, err := s.exportJobs().CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
	switch {
	case err != nil:
		return translate("export job read", err)
	case n == 0:
		return store.ErrNotFound
	}
	return fmt.Errorf("%w (export job %s is held by another claim)", store.ErrVersionConflict, id)
}

// RenewExportJob moves the lease of a job claim holds.
func (s *Store) RenewExportJob(ctx context.Context, id, claim string, until time.Time) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.exportJobs().UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "claim", Value: claim}, {Key: "fin", Value: int64(0)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease", Value: msOrZero(until)}}}})
	if err != nil {
		return translate("export job renew", err)
	}
	if res.MatchedCount == 0 {
		return s.heldBy(ctx, id)
	}
	return nil
}

// SaveExportJob replaces the state of a job claim holds. It sets claim again along with the state: on
// FerretDB an update's filter and write are two steps, and should another runner claim the job in
// between, the document still names the claim whose state (and so whose files) it holds.
func (s *Store) SaveExportJob(ctx context.Context, id, claim string, state []byte, finished, until time.Time) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.exportJobs().UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "claim", Value: claim}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "st", Value: state}, {Key: "fin", Value: msOrZero(finished)},
			{Key: "claim", Value: claim}, {Key: "lease", Value: msOrZero(until)}}}})
	if err != nil {
		return translate("export job save", err)
	}
	if res.MatchedCount == 0 {
		return s.heldBy(ctx, id)
	}
	return nil
}

// RemoveExportJob removes the job document first, so that it is gone for readers and runners at
// once, then its claim marks and files.
func (s *Store) RemoveExportJob(ctx context.Context, id string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.exportJobs().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return translate("export job remove", err)
	}
	if _, err := s.db.Collection(collExportClaims).DeleteMany(ctx, bson.D{{Key: "job", Value: id}}); err != nil {
		return translate("export job remove", err)
	}
	return s.removeExportFiles(ctx, id)
}

// removeExportFiles removes every file of a job, closed or not.
func (s *Store) removeExportFiles(ctx context.Context, id string) error {
	b := s.bucket()
	if _, err := b.GetFilesCollection().DeleteMany(ctx, bson.D{{Key: "_id", Value: jobPrefix(id)}}); err != nil {
		return translate("export files remove", err)
	}
	if _, err := b.GetChunksCollection().DeleteMany(ctx, bson.D{{Key: "files_id", Value: jobPrefix(id)}}); err != nil {
		return translate("export files remove", err)
	}
	return nil
}

// CreateExportFile opens a GridFS upload. The driver's upload stream holds up to 16 MiB before it
// inserts chunks (of 255 KiB), whatever the file's size.
func (s *Store) CreateExportFile(ctx context.Context, id, claim, name string) (store.ExportFile, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.ExportJob(octx, id); err != nil {
		return nil, err
	}
	fid := fileID(id, claim, name)
	b := s.bucket()
	if _, err := b.GetFilesCollection().DeleteOne(octx, bson.D{{Key: "_id", Value: fid}}); err != nil {
		return nil, translate("export file replace", err)
	}
	if _, err := b.GetChunksCollection().DeleteMany(octx, bson.D{{Key: "files_id", Value: fid}}); err != nil {
		return nil, translate("export file replace", err)
	}
	// The stream lives as long as the caller's ctx, not one operation's timeout: a file takes as long
	// as the export.
	up, err := b.OpenUploadStreamWithID(ctx, fid, name,
		options.GridFSUpload().SetMetadata(bson.D{{Key: "job", Value: id}, {Key: "claim", Value: claim}}))
	if err != nil {
		return nil, translate("export file create", err)
	}
	return &exportUpload{s: s, up: up, fid: fid}, nil
}

type exportUpload struct {
	s   *Store
	up  *mongo.GridFSUploadStream
	fid string
}

func (u *exportUpload) Write(p []byte) (int, error) {
	n, err := u.up.Write(p)
	return n, translate("export file write", err)
}

func (u *exportUpload) Close() error { return translate("export file close", u.up.Close()) }

// Abort removes the chunks written so far. The stream's own Abort runs on the caller's context, which
// is typically cancelled by then (the job was cancelled or the server is stopping), so the chunks are
// removed again on a context of their own.
func (u *exportUpload) Abort() error {
	_ = u.up.Abort()
	ctx, cancel := context.WithTimeout(context.Background(), u.s.timeout)
	defer cancel()
	_, err := u.s.bucket().GetChunksCollection().DeleteMany(ctx, bson.D{{Key: "files_id", Value: u.fid}})
	return translate("export file abort", err)
}

// OpenExportFile opens the file of the job's current claim as a GridFS download stream, which reads
// the chunks through a cursor.
func (s *Store) OpenExportFile(ctx context.Context, id, name string) (io.ReadCloser, error) {
	j, err := s.ExportJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	ds, err := s.bucket().OpenDownloadStream(ctx, fileID(id, j.Claim, name))
	if err != nil {
		return nil, translate("export file open", err)
	}
	return exportDownload{ds}, nil
}

type exportDownload struct{ ds *mongo.GridFSDownloadStream }

func (d exportDownload) Read(p []byte) (int, error) {
	n, err := d.ds.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = translate("export file read", err)
	}
	return n, err
}

func (d exportDownload) Close() error { return translate("export file close", d.ds.Close()) }
