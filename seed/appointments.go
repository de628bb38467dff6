package seed

import (
	"fmt"
	"strings"
	"time"
)

// Appointment book shape. Each practice has two schedules: a GP list published for online booking and a
// clinic kept for reception booking. Each weekday has one short session per schedule, which keeps the
// total to a few hundred slots while still giving every day something to search.
const (
	futureDays    = 28 // slots run from Now's day to Now's day + futureDays, inclusive
	pastDays      = 28 // past (busy, fulfilled) slots in the 4 weeks before Now's day
	dayStartHour  = 8
	dayEndHour    = 18
	busyPercent   = 30 // chance that a future slot (other than a session's first) is already booked
	pastPerDay    = 2  // past slots per schedule per weekday, all attended
	cancelPerBook = 1  // cancelled appointments per practice
)

type scheduleDef struct {
	suffix        string // "gp" -> "sched-a81001-gp"
	clinicianIdx  int
	minutes       int
	slotsPerDay   int
	onlineBooking bool
	category      code
	serviceType   code
	description   string
	weekdays      []time.Weekday
}

var scheduleDefs = []scheduleDef{
	{"gp", 0, 10, 4, true, code{"17", "General Practice"}, code{"124", "General Practice"},
		"GP appointment", []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}},
	{"clinic", 1, 15, 3, false, code{"17", "General Practice"}, code{"124", "General Practice"},
		"GP clinic (book with reception)", []time.Weekday{time.Tuesday, time.Thursday}},
}

// sessionStarts are the times a session may begin; the last leaves room for 4 x 15 minutes before 18:00.
var sessionStarts = [][2]int{{8, 0}, {8, 30}, {9, 0}, {10, 0}, {11, 0}, {14, 0}, {15, 0}, {16, 0}, {17, 0}}

type schedule struct {
	def      scheduleDef
	id       string
	practice *practice
	actor    *clinician
}

type slot struct {
	id         string
	sched      *schedule
	start, end time.Time
	busy       bool
	patient    *patientProfile // who booked it, when busy
}

func (g *gen) emitAppointmentBooks() {
	var schedules []*schedule
	for _, p := range g.practices {
		for _, d := range scheduleDefs {
			schedules = append(schedules, &schedule{def: d, id: "sched-" + p.key + "-" + d.suffix, practice: p,
				actor: p.clinicians[d.clinicianIdx%len(p.clinicians)]})
		}
	}
	for _, s := range schedules {
		g.emitSchedule(s)
	}
	var slots []*slot
	for _, s := range schedules {
		slots = append(slots, g.pastSlots(s)...)
		slots = append(slots, g.futureSlots(s)...)
	}
	for _, s := range slots {
		g.emitSlot(s)
	}
	for _, s := range slots {
		if s.busy {
			g.emitAppointment(s, false)
		}
	}
	// Cancelled appointments keep their slot reference, as GP Connect does; the slot went back to free.
	for _, p := range g.practices {
		r := g.rng("cancelled/" + p.key)
		var free []*slot
		for _, s := range slots {
			if s.sched.practice == p && !s.busy && s.start.After(g.day(g.now, 1)) {
				free = append(free, s)
			}
		}
		for i := 0; i < cancelPerBook && len(free) > 0 && len(p.patients) > 0; i++ {
			s := free[r.IntN(len(free))]
			s.patient = pick(r, p.patients)
			g.emitAppointment(s, true)
		}
	}
}

func (g *gen) emitSchedule(s *schedule) {
	g.emit("Schedule", s.id,
		kv{"extension", arr{obj{{"url", OnlineBookableExtension}, {"valueBoolean", s.def.onlineBooking}}}},
		kv{"active", true},
		kv{"serviceCategory", arr{concept(serviceCatSystem, s.def.category)}},
		kv{"serviceType", arr{concept(serviceTypeSystem, s.def.serviceType)}},
		kv{"actor", arr{ref("Location", s.practice.locID), ref("Practitioner", s.actor.id)}},
		kv{"planningHorizon", obj{
			{"start", g.dateTime(g.day(g.now, -pastDays))},
			{"end", g.dateTime(g.day(g.now, futureDays+1))},
		}},
		kv{"comment", s.def.description},
	)
}

func (g *gen) works(s *schedule, d time.Time) bool {
	for _, w := range s.def.weekdays {
		if d.Weekday() == w {
			return true
		}
	}
	return false
}

// pastSlots are the attended appointments of the four weeks before Now's day.
func (g *gen) pastSlots(s *schedule) []*slot {
	var out []*slot
	if len(s.practice.patients) == 0 {
		return nil
	}
	for n := -pastDays; n < 0; n++ {
		d := g.day(g.now, n)
		if !g.works(s, d) {
			continue
		}
		r := g.rng("slots/" + s.id + "/" + date(d))
		hm := pick(r, sessionStarts)
		start := g.at(d, hm[0], hm[1])
		for i := 0; i < pastPerDay; i++ {
			sl := g.newSlot(s, start)
			sl.busy = true
			sl.patient = pick(r, s.practice.patients)
			out = append(out, sl)
			start = sl.end
		}
	}
	return out
}

// futureSlots cover Now's day through Now's day + futureDays. On Now's day the GP session starts at the
// next whole quarter hour, so there is always something bookable soon during working hours.
func (g *gen) futureSlots(s *schedule) []*slot {
	var out []*slot
	firstMark := g.now.Truncate(0)
	if m := firstMark.Minute() % 15; m != 0 || firstMark.Second() != 0 || firstMark.Nanosecond() != 0 {
		firstMark = g.at(firstMark, firstMark.Hour(), firstMark.Minute()-m+15)
	}
	if open := g.at(g.now, dayStartHour, 0); firstMark.Before(open) {
		firstMark = open
	}
	for n := 0; n <= futureDays; n++ {
		d := g.day(g.now, n)
		if !g.works(s, d) {
			continue
		}
		r := g.rng("slots/" + s.id + "/" + date(d))
		hm := pick(r, sessionStarts)
		start := g.at(d, hm[0], hm[1])
		if n == 0 && (s.def.onlineBooking || start.Before(firstMark)) {
			start = firstMark
		}
		closing := g.at(d, dayEndHour, 0)
		for i := 0; i < s.def.slotsPerDay; i++ {
			sl := g.newSlot(s, start)
			if sl.end.After(closing) {
				break
			}
			if i > 0 && len(s.practice.patients) > 0 && r.IntN(100) < busyPercent {
				sl.busy = true
				sl.patient = pick(r, s.practice.patients)
			}
			out = append(out, sl)
			start = sl.end
		}
	}
	return out
}

func (g *gen) newSlot(s *schedule, start time.Time) *slot {
	return &slot{
		id:    fmt.Sprintf("slot-%s-%s-%s", s.practice.key, s.def.suffix, start.Format("20060102-1504")),
		sched: s,
		start: start,
		end:   start.Add(time.Duration(s.def.minutes) * time.Minute),
	}
}

func (g *gen) emitSlot(s *slot) {
	status := "free"
	if s.busy {
		status = "busy"
	}
	g.emit("Slot", s.id,
		kv{"extension", arr{obj{{"url", OnlineBookableExtension}, {"valueBoolean", s.sched.def.onlineBooking}}}},
		kv{"serviceCategory", arr{concept(serviceCatSystem, s.sched.def.category)}},
		kv{"serviceType", arr{concept(serviceTypeSystem, s.sched.def.serviceType)}},
		kv{"appointmentType", concept(apptTypeSystem, code{"ROUTINE", "Routine appointment - default if not valued"})},
		kv{"schedule", ref("Schedule", s.sched.id)},
		kv{"status", status},
		kv{"start", g.dateTime(s.start)},
		kv{"end", g.dateTime(s.end)},
	)
}

// emitAppointment writes the appointment for a busy slot (booked if future, fulfilled if past), or a
// cancelled one for a free slot.
func (g *gen) emitAppointment(s *slot, cancelled bool) {
	r := g.rng("appointment/" + s.id)
	id := "appt-" + strings.TrimPrefix(s.id, "slot-")
	status := "booked"
	var created time.Time
	switch {
	case cancelled:
		status = "cancelled"
		id += "-cancelled"
		created = g.at(g.day(g.now, -1-r.IntN(10)), 8+r.IntN(10), 5*r.IntN(12))
	case s.start.Before(g.now):
		status = "fulfilled"
		created = g.at(g.day(s.start, -1-r.IntN(14)), 8+r.IntN(10), 5*r.IntN(12))
	default:
		created = g.at(g.day(g.now, -1-r.IntN(14)), 8+r.IntN(10), 5*r.IntN(12))
	}
	var reason obj
	if cancelled {
		reason = conceptText(cancelSystem, code{"pat", "Patient"}, "Patient no longer needs the appointment")
	}
	partStatus := "accepted"
	if cancelled {
		partStatus = "declined"
	}
	g.emit("Appointment", id,
		kv{"status", status},
		kv{"cancelationReason", reason},
		kv{"serviceCategory", arr{concept(serviceCatSystem, s.sched.def.category)}},
		kv{"serviceType", arr{concept(serviceTypeSystem, s.sched.def.serviceType)}},
		kv{"appointmentType", concept(apptTypeSystem, code{"ROUTINE", "Routine appointment - default if not valued"})},
		kv{"description", s.sched.def.description},
		kv{"start", g.dateTime(s.start)},
		kv{"end", g.dateTime(s.end)},
		kv{"minutesDuration", s.sched.def.minutes},
		kv{"slot", arr{ref("Slot", s.id)}},
		kv{"created", g.dateTime(created)},
		kv{"participant", arr{
			obj{{"actor", ref("Patient", s.patient.id)}, {"required", "required"}, {"status", partStatus}},
			obj{{"actor", ref("Practitioner", s.sched.actor.id)}, {"required", "required"}, {"status", "accepted"}},
			obj{{"actor", ref("Location", s.sched.practice.locID)}, {"required", "required"}, {"status", "accepted"}},
		}},
	)
}
