//! The mobile units service: the units across the province (charging vehicles and containers)
//! with their reported positions, kept as store documents (kind [`DOC_KIND`]); the relocation
//! plan the operations centre follows (which unit goes where, when it must leave, the cars it
//! is expected to serve); and the duty that re-plans it.
//!
//! A plan is made in three steps, one module each: [`problem`] turns the platform's forecasts
//! and live capacity, and the units where they are, into the planner's problem
//! (`chargeops_dispatch::province` types, road distances from [`roads`]) and solves it with the
//! planner; [`view`] turns the solved plan into times, station names and routes. [`replan`]
//! decides when to plan again.
//!
//! When it re-plans: at start once there are units; when a unit is added or removed; when a unit
//! reports `broken` (it is left out and its stays go to the others) or `ready` again after being
//! broken; when the forecasts are refitted (the forecast cache refits at every new platform hour
//! and after a few minutes) and the shortfall of some station-hour moved by more than half a car
//! an hour; when the live capacity of a short station changes that much; on request; and at
//! least every platform hour. Automatic re-plans (all but unit changes and requests) wait twice
//! as long as the last plan took, so that planning a large network on a busy machine takes at
//! most a third of a core. Every plan is published as `Event::UnitsPlanned`, every accepted
//! report as `Event::UnitMoved`.
//!
//! A unit serves `cars_per_hour` (given, or [`default_cars_per_hour`]). A unit's own tracker
//! reports with credentials of its own (the unit id and the tracker password staff gave it,
//! stored as a salted digest): it may move its unit and nothing else, and cannot declare a
//! breakdown (staff do).

mod problem;
mod replan;
mod roads;
mod unit;
mod view;

pub use unit::{
    MobileUnit, NewUnit, Report, Reporter, UnitKind, UnitStatus, default_cars_per_hour,
};
pub use view::{
    MoveView, NextMove, PlanView, Position, ShortStation, StayView, UnitPlanView, UnitView,
};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Duration;

use chargeops_core::Event;
use chargeops_core::secret::verify_secret;

use crate::forecasts::Forecasts;
use crate::{Caller, Duties, Error, Platform, Result};
use problem::{Inputs, Problem, placed_stations};
use replan::{Basis, Trigger, why_plan};
use unit::{check_position, tracker_secret, valid_id};

/// Store document kind of a unit; the document id is the unit id.
pub const DOC_KIND: &str = "mobile_unit";
/// Units drive at this speed on the highway, km/h (the planner's too).
pub const SPEED_KMH: f64 = 70.0;
/// Hours planned ahead unless a re-plan request says otherwise.
pub const DEFAULT_HOURS: usize = 24;
/// The longest plan: the planner's work grows with the cube of the horizon, and forecasts
/// beyond two days are the analog-day estimate alone.
pub const MAX_HOURS: usize = 48;
/// A unit this close to a station is at it.
const AT_STATION_KM: f64 = 2.0;

#[derive(Default)]
struct Book {
    loaded: bool,
    units: BTreeMap<String, MobileUnit>,
}

/// The units, their plan and what re-plans it.
pub struct Units {
    platform: Platform,
    forecasts: Arc<Forecasts>,
    /// Serialises every change of units between the edges, the duty and the demo's mover.
    book: tokio::sync::Mutex<Book>,
    plan: RwLock<Option<Arc<PlanView>>>,
    /// Held while planning: one plan at a time.
    planning: tokio::sync::Mutex<Option<Basis>>,
    version: AtomicU64,
    hours: AtomicUsize,
    pending: Mutex<Vec<Trigger>>,
    wake: tokio::sync::Notify,
}

fn check_hours(h: usize) -> Result<usize> {
    if (1..=MAX_HOURS).contains(&h) {
        Ok(h)
    } else {
        Err(Error::invalid(format!(
            "hours must be 1 to {MAX_HOURS}, got {h}"
        )))
    }
}

impl Units {
    /// The units of `platform`, planned on the fitted `forecasts`. Nothing is read until first
    /// asked for.
    pub fn new(platform: Platform, forecasts: Arc<Forecasts>) -> Arc<Units> {
        Arc::new(Units {
            platform,
            forecasts,
            book: tokio::sync::Mutex::new(Book::default()),
            plan: RwLock::new(None),
            planning: tokio::sync::Mutex::new(None),
            version: AtomicU64::new(0),
            hours: AtomicUsize::new(DEFAULT_HOURS),
            pending: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        })
    }

    // -----------------------------------------------------------------------------------------
    // The units.

    /// Drops the units read from the store and the plan made from them (the duties moved);
    /// the next use reads them again, and the next holder plans anew.
    pub(crate) async fn forget(&self) {
        *self.book.lock().await = Book::default();
        *self.plan.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The book of units, read from the store the first time.
    async fn book(&self) -> Result<tokio::sync::MutexGuard<'_, Book>> {
        let mut book = self.book.lock().await;
        if !book.loaded {
            for (id, text) in self.platform.store.list_documents(DOC_KIND).await? {
                match serde_json::from_str::<MobileUnit>(&text) {
                    Ok(u) => {
                        book.units.insert(u.id.clone(), u);
                    }
                    // A document this version cannot read is left alone, not dropped.
                    Err(e) => {
                        tracing::error!(unit_id = %id, error = %e, "unreadable mobile unit skipped");
                    }
                }
            }
            book.loaded = true;
        }
        Ok(book)
    }

    async fn save(&self, unit: &MobileUnit) -> Result<()> {
        let text =
            serde_json::to_string(unit).map_err(|_| Error::internal("failed to encode a unit"))?;
        self.platform.fence()?;
        self.platform
            .store
            .put_document(DOC_KIND, &unit.id, &text)
            .await?;
        Ok(())
    }

    /// Every unit, in id order.
    pub async fn list(&self) -> Result<Vec<MobileUnit>> {
        Ok(self.book().await?.units.values().cloned().collect())
    }

    /// Every unit with its station's name and its next move in the current plan, in id order.
    pub async fn views(&self) -> Result<Vec<UnitView>> {
        let all = self.list().await?;
        let names = self.station_names().await?;
        let plan = self.current();
        let now = self.platform.now();
        Ok(all
            .into_iter()
            .map(|u| view::unit_view(u, &names, plan.as_deref(), now))
            .collect())
    }

    /// `u` with its station's name and its next move in the current plan.
    pub async fn view(&self, u: MobileUnit) -> Result<UnitView> {
        let names = self.station_names().await?;
        let plan = self.current();
        Ok(view::unit_view(
            u,
            &names,
            plan.as_deref(),
            self.platform.now(),
        ))
    }

    async fn station_names(&self) -> Result<HashMap<String, String>> {
        Ok(self
            .platform
            .store
            .list_stations()
            .await?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect())
    }

    /// Adds a unit, ready at its station, and re-plans.
    pub async fn create(&self, new: NewUnit, by: &Caller) -> Result<UnitView> {
        let new = new.check()?;
        let station = self
            .platform
            .store
            .get_station(&new.station_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("station {} not found", new.station_id)))?;
        let Some(at) = roads::position_of(&station) else {
            return Err(Error::invalid(format!(
                "station {} has no position, so no unit can be there",
                station.id
            )));
        };
        let now = self.platform.now();
        let unit = new.at(&station, at, now);
        {
            let mut book = self.book().await?;
            if book.units.contains_key(&unit.id) {
                return Err(Error::conflict(
                    "conflict",
                    format!("mobile unit {} exists", unit.id),
                ));
            }
            self.save(&unit).await?;
            book.units.insert(unit.id.clone(), unit.clone());
        }
        tracing::info!(unit_id = %unit.id, station_id = %station.id, by = %by.name, "mobile unit added");
        self.trigger(Trigger::new(
            "unit_added",
            format!("{} added at {}", unit.id, station.id),
        ));
        let names = HashMap::from([(station.id, station.name)]);
        Ok(view::unit_view(unit, &names, None, now))
    }

    /// Applies a report on unit `id` (see [`Reporter`] for who may say what), announces it and
    /// re-plans on a breakdown or a repair. Returns the unit as it is now.
    pub async fn report(&self, id: &str, r: &Report, from: Reporter) -> Result<MobileUnit> {
        let status = r.status;
        check_position(r.lat, r.lon)?;
        let stations = placed_stations(&self.platform).await?;
        if let Some(sid) = &r.station_id
            && !stations.iter().any(|s| &s.id == sid)
        {
            return Err(match self.platform.store.get_station(sid).await? {
                Some(_) => Error::invalid(format!(
                    "station {sid} has no position, so no unit can be there"
                )),
                None => Error::not_found(format!("station {sid} not found")),
            });
        }
        let now = self.platform.now();
        let plan = self.current();
        let mut book = self.book().await?;
        let Some(old) = book.units.get(id).cloned() else {
            return Err(Error::not_found(format!("mobile unit {id} not found")));
        };
        let tracker = from == Reporter::Tracker;
        if old.status == UnitStatus::Broken {
            if tracker {
                return Ok(old);
            }
            if !matches!(status, UnitStatus::Broken | UnitStatus::Ready) {
                return Err(Error::conflict(
                    "unit_broken",
                    format!(
                        "mobile unit {id} is broken: report ready once it is repaired, or broken to move it"
                    ),
                ));
            }
        }
        if tracker && status == UnitStatus::Broken {
            return Err(Error::invalid("a tracker does not report breakdowns"));
        }
        let mut u = old.clone();
        u.lat = r.lat;
        u.lon = r.lon;
        u.status = status;
        u.reported_at = now;
        match status {
            UnitStatus::Driving => {
                u.station_id = r
                    .station_id
                    .clone()
                    .or_else(|| view::planned_target(plan.as_deref(), id, now))
                    .or(if old.status == UnitStatus::Driving {
                        old.station_id.clone()
                    } else {
                        None
                    });
                u.left_from = if old.status == UnitStatus::Driving {
                    old.left_from.clone()
                } else {
                    old.station_id
                        .clone()
                        .filter(|s| Some(s) != u.station_id.as_ref())
                };
            }
            _ => {
                u.station_id = r.station_id.clone().or_else(|| {
                    roads::nearest(&stations, (r.lat, r.lon))
                        .filter(|(_, km)| *km <= AT_STATION_KM)
                        .map(|(s, _)| s.id.clone())
                });
                u.left_from = None;
            }
        }
        self.save(&u).await?;
        book.units.insert(u.id.clone(), u.clone());
        drop(book);
        self.platform.publish(Event::UnitMoved {
            unit_id: u.id.clone(),
            lat: u.lat,
            lon: u.lon,
            status: status.as_str().to_owned(),
            station_id: u.station_id.clone(),
            at: now,
        });
        if status == UnitStatus::Broken && old.status != UnitStatus::Broken {
            let where_ = if old.status == UnitStatus::Driving {
                let to = old.station_id.as_deref().unwrap_or("its destination");
                let left = old
                    .station_id
                    .as_ref()
                    .and_then(|sid| stations.iter().find(|s| &s.id == sid))
                    .and_then(roads::position_of)
                    .map(|p| roads::great_circle_km(p, (r.lat, r.lon)));
                match left {
                    Some(km) => format!("mid-route to {to}, {km:.0} km from it"),
                    None => format!("mid-route to {to}"),
                }
            } else {
                format!(
                    "at {}",
                    u.station_id.as_deref().unwrap_or("a place off the network")
                )
            };
            tracing::warn!(unit_id = %id, %where_, "mobile unit broken");
            self.trigger(Trigger::new(
                "unit_report",
                format!("{id} reported broken {where_}: left out of the plan, its stays go to the other units"),
            ));
        } else if old.status == UnitStatus::Broken && status == UnitStatus::Ready {
            self.trigger(Trigger::new(
                "unit_report",
                format!("{id} repaired: back in the plan"),
            ));
        }
        Ok(u)
    }

    /// Gives the unit's tracker a new password (the old one stops working at once).
    pub async fn set_tracker(&self, id: &str, password: &str, by: &Caller) -> Result<()> {
        let secret = tracker_secret(password)?;
        let mut book = self.book().await?;
        let Some(mut u) = book.units.get(id).cloned() else {
            return Err(Error::not_found(format!("mobile unit {id} not found")));
        };
        u.tracker_secret = Some(secret);
        self.save(&u).await?;
        book.units.insert(id.to_owned(), u);
        tracing::info!(unit_id = %id, by = %by.name, "mobile unit tracker password set");
        Ok(())
    }

    /// Whether `password` is the tracker password of unit `id` (false for an id no unit can
    /// have, without reading the store).
    pub async fn tracker_ok(&self, id: &str, password: &str) -> Result<bool> {
        if !valid_id(id) {
            return Ok(false);
        }
        Ok(self
            .book()
            .await?
            .units
            .get(id)
            .and_then(|u| u.tracker_secret.as_deref())
            .is_some_and(|stored| verify_secret(password, stored)))
    }

    /// Removes a unit and re-plans.
    pub async fn delete(&self, id: &str, by: &Caller) -> Result<()> {
        {
            let mut book = self.book().await?;
            if !book.units.contains_key(id) {
                return Err(Error::not_found(format!("mobile unit {id} not found")));
            }
            self.platform.store.delete_document(DOC_KIND, id).await?;
            book.units.remove(id);
        }
        tracing::info!(unit_id = %id, by = %by.name, "mobile unit removed");
        self.trigger(Trigger::new("unit_removed", format!("{id} removed")));
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // The plan.

    /// The current plan, if one was made.
    pub fn current(&self) -> Option<Arc<PlanView>> {
        self.plan.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current plan, its first `hours` hours (24 when not given). The first call after a
    /// start plans at once when there are units.
    pub async fn plan(&self, hours: Option<usize>) -> Result<PlanView> {
        let hours = check_hours(hours.unwrap_or(DEFAULT_HOURS))?;
        let plan = match self.current() {
            Some(p) => p,
            None if self.list().await?.is_empty() => {
                // Nothing to plan: an empty plan, without fitting every station's forecast.
                let mut empty = PlanView::empty(
                    self.version.load(Ordering::SeqCst),
                    hours,
                    self.platform.now(),
                );
                empty.clock_speed = self.platform.clock().speed();
                return Ok(empty);
            }
            None => self.replan(&[Trigger::start()]).await?,
        };
        Ok(self.answer(plan.clipped(hours)))
    }

    /// Re-plans now, for `by`, and answers the new plan; `hours`, when given, is the horizon of
    /// this plan and of every later one.
    pub async fn request_plan(&self, hours: Option<usize>, by: &Caller) -> Result<PlanView> {
        if let Some(h) = hours {
            self.hours.store(check_hours(h)?, Ordering::Relaxed);
        }
        let plan = self
            .replan(&[Trigger::new("request", format!("asked for by {}", by.name))])
            .await?;
        Ok(self.answer(plan.as_ref().clone()))
    }

    /// A plan as answered now: with the platform time and the clock's speed.
    fn answer(&self, mut plan: PlanView) -> PlanView {
        plan.now = self.platform.now();
        plan.clock_speed = self.platform.clock().speed();
        plan
    }

    /// Asks the duty for a new plan.
    fn trigger(&self, t: Trigger) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
        self.wake.notify_one();
    }

    fn take_triggers(&self) -> Vec<Trigger> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-plans now for `triggers` (a request, and the duty for units added, removed, broken).
    async fn replan(&self, triggers: &[Trigger]) -> Result<Arc<PlanView>> {
        let mut basis = self.planning.lock().await;
        let hours = self.hours.load(Ordering::Relaxed);
        let inp = Inputs::read(&self.platform, &self.forecasts, hours).await?;
        self.make_plan(&mut basis, inp, triggers).await
    }

    /// Makes a plan from `inp` for the units as they are now, publishes it and remembers what it
    /// was made from. The caller holds the planning lock (`basis`).
    async fn make_plan(
        &self,
        basis: &mut Option<Basis>,
        inp: Inputs,
        triggers: &[Trigger],
    ) -> Result<Arc<PlanView>> {
        let units = self.list().await?;
        let previous = self.current();
        let problem = Problem::build(&inp, &units, previous.as_deref());
        let (reason, detail) = Trigger::named(triggers);
        let t0 = std::time::Instant::now();
        let solved = problem.solve().await?;
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let v = Arc::new(view::plan_view(&inp, &solved, version, reason, detail));
        tracing::info!(
            version,
            reason,
            units = solved.problem.mobile.len(),
            stations = inp.stations.len(),
            unmet_car_h = v.unmet_car_h,
            static_car_h = v.static_car_h,
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "mobile units planned"
        );
        *self.plan.write().unwrap_or_else(|e| e.into_inner()) = Some(v.clone());
        *basis = Some(Basis {
            origin: inp.origin,
            horizon: inp.horizon,
            took: t0.elapsed(),
            made: std::time::Instant::now(),
            planned_at: inp.now,
            shortfall: inp
                .sites
                .iter()
                .map(|s| (s.id.clone(), s.shortfall.clone()))
                .collect(),
            fits: inp.fits,
        });
        self.platform.publish(Event::UnitsPlanned {
            version,
            reason: reason.to_owned(),
            at: inp.now,
        });
        Ok(v)
    }

    // -----------------------------------------------------------------------------------------
    // The duty.

    /// Starts the duty that keeps the plan current (see the module doc for when it re-plans).
    pub(crate) fn start(self: &Arc<Self>, duties: &Duties) {
        let units = self.clone();
        duties.start("units.replan", move |_stop| {
            let units = units.clone();
            async move { units.keep_planning().await }
        });
    }

    async fn keep_planning(&self) {
        loop {
            // Two platform minutes between looks: every second or two in a fast demo, at most
            // ten seconds on the wall clock (a look at cached forecasts is cheap).
            let tick = self
                .platform
                .clock()
                .real_duration(Duration::minutes(2))
                .clamp(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(10),
                );
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e.message, "mobile units: planning failed; retrying");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// One turn of the duty: triggered re-plans first; otherwise, while there are units, a look
    /// at the forecasts.
    async fn step(&self) -> Result<()> {
        let triggers = self.take_triggers();
        let any_units = !self.list().await?.is_empty();
        if !triggers.is_empty() {
            self.replan(&triggers).await?;
            return Ok(());
        }
        // With no units there is nothing to plan, and no reason to fit every station's forecast.
        if !any_units {
            return Ok(());
        }
        let mut basis = self.planning.lock().await;
        if basis.as_ref().is_some_and(Basis::resting) {
            return Ok(());
        }
        let hours = self.hours.load(Ordering::Relaxed);
        let inp = Inputs::read(&self.platform, &self.forecasts, hours).await?;
        if let Some(t) = why_plan(basis.as_ref(), &inp) {
            self.make_plan(&mut basis, inp, &[t]).await?;
        }
        Ok(())
    }
}
