package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one check.
type Result struct {
	// ID names the check: area/type/what, such as search/Patient/birthdate/ge.
	ID      string  `json:"id"`
	Outcome Outcome `json:"outcome"`
	// Reason says why a check failed or was skipped, or what a passing one showed.
	Reason string `json:"reason,omitempty"`
	// Request is the request that showed the outcome: method, path and query, and status.
	Request string `json:"request,omitempty"`
	// KnownFailure marks a failure that Config.AllowFail names: reported, but not failing the run.
	KnownFailure bool          `json:"knownFailure,omitempty"`
	Elapsed      time.Duration `json:"elapsedNanos"`
}

// Area is the first part of the id: capabilities, read, search, ...
func (r Result) Area() string {
	a, _, _ := strings.Cut(r.ID, "/")
	return a
}

// Report is a run's results.
type Report struct {
	BaseURL  string        `json:"baseUrl"`
	RunID    string        `json:"runId"`
	Profile  string        `json:"profile,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"durationNanos"`
	Requests int           `json:"requests"`
	Results  []Result      `json:"results"`
}

// Counts are the number of checks by outcome; known failures are counted apart from failures.
type Counts struct {
	Pass, Fail, KnownFail, Skip int
}

// Counts counts the checks by outcome.
func (r *Report) Counts() Counts {
	var c Counts
	for _, res := range r.Results {
		switch {
		case res.Outcome == Pass:
			c.Pass++
		case res.Outcome == Fail && res.KnownFailure:
			c.KnownFail++
		case res.Outcome == Fail:
			c.Fail++
		case res.Outcome == Skip:
			c.Skip++
		}
	}
	return c
}

// OK reports whether every applicable check passed (known failures aside) and at least one ran.
func (r *Report) OK() bool {
	c := r.Counts()
	return c.Fail == 0 && c.Pass+c.KnownFail > 0
}

// Result returns the result of the check with the id, if it ran.
func (r *Report) Result(id string) (Result, bool) {
	for _, res := range r.Results {
		if res.ID == id {
			return res, true
		}
	}
	return Result{}, false
}

// WriteTable writes the results as an aligned table, then the totals per area and overall.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tOUTCOME\tREASON\tREQUEST")
	for _, res := range r.Results {
		out := strings.ToUpper(string(res.Outcome))
		if res.KnownFailure {
			out = "FAIL(known)"
		}
		reason := strings.ReplaceAll(res.Reason, "\n", " ")
		if res.Outcome != Fail {
			reason = clip(reason, 100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", res.ID, out, reason, res.Request)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	areas := map[string]*Counts{}
	var names []string
	for _, res := range r.Results {
		a := res.Area()
		if areas[a] == nil {
			areas[a] = &Counts{}
			names = append(names, a)
		}
		c := areas[a]
		switch {
		case res.Outcome == Pass:
			c.Pass++
		case res.Outcome == Fail && res.KnownFailure:
			c.KnownFail++
		case res.Outcome == Fail:
			c.Fail++
		default:
			c.Skip++
		}
	}
	sort.Strings(names)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "AREA\tPASS\tFAIL\tKNOWN\tSKIP\t")
	for _, a := range names {
		c := areas[a]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", a, c.Pass, c.Fail, c.KnownFail, c.Skip)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := r.Counts()
	verdict := "PASSED"
	if !r.OK() {
		verdict = "FAILED"
	}
	_, err := fmt.Fprintf(w, "\n%s: %d checks against %s (run %s): %d passed, %d failed, %d known failures, %d skipped; %d requests in %s\n",
		verdict, len(r.Results), r.BaseURL, r.RunID, c.Pass, c.Fail, c.KnownFail, c.Skip, r.Requests, r.Duration.Round(100*time.Millisecond))
	if err == nil && c.KnownFail > 0 {
		var ids []string
		for _, res := range r.Results {
			if res.KnownFailure {
				ids = append(ids, res.ID)
			}
		}
		_, err = fmt.Fprintf(w, "known failures (allowed by --allow-fail, still to fix): %s\n", strings.Join(ids, ", "))
	}
	return err
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the report in the JUnit XML format that CI systems read: one testsuite per area,
// one testcase per check. A known failure is written as skipped, its reason saying it is a known
// failure, so that CI shows it without failing.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "gpfhir conformance " + r.BaseURL, Time: r.Duration.Seconds()}
	idx := map[string]int{}
	for _, res := range r.Results {
		a := res.Area()
		i, ok := idx[a]
		if !ok {
			i = len(out.Suites)
			idx[a] = i
			out.Suites = append(out.Suites, junitSuite{Name: a})
		}
		s := &out.Suites[i]
		jc := junitCase{Name: res.ID, Classname: "conformance." + a, Time: res.Elapsed.Seconds(), SystemOut: res.Request}
		switch {
		case res.Outcome == Fail && res.KnownFailure:
			jc.Skipped = &junitMessage{Message: "known failure: " + res.Reason}
			s.Skipped++
			out.Skipped++
		case res.Outcome == Fail:
			jc.Failure = &junitMessage{Message: clip(res.Reason, 300), Body: res.Reason + "\n" + res.Request}
			s.Failures++
			out.Failures++
		case res.Outcome == Skip:
			jc.Skipped = &junitMessage{Message: res.Reason}
			s.Skipped++
			out.Skipped++
		}
		s.Tests++
		s.Time += res.Elapsed.Seconds()
		out.Tests++
		s.Cases = append(s.Cases, jc)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
